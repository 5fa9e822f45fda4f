//! `request-termination`: answers the client directly with a fixed response instead of proxying.
//!
//! Used to take a route or service out of service, to block a consumer, or (with `trigger`) to
//! short-circuit only the requests that ask for it. With `echo`, the answer describes the request,
//! which helps debug what the gateway received.
//!
//! Everything that does not depend on the request (status, body bytes, content type) is prepared at
//! build time, so terminating costs one small allocation for the response.

use crate::check_header_name;
use bytes::Bytes;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::{BuildEnv, BuildError, Ctx, Flow, Plugin, PluginFactory, Step};
use gatehouse_core::schema::{Field, Record};
use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Kong's content type for JSON answers, also the default for a configured `body`.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The `request-termination` plugin kind.
pub struct RequestTerminationFactory {
    schema: Record,
}

impl RequestTerminationFactory {
    /// The plugin kind, with Kong's config schema.
    pub fn new() -> Self {
        let schema = Record::new(vec![
            Field::integer("status_code").required().default(json!(503)).between(100, 599),
            Field::string("message"),
            Field::string("content_type").check(check_content_type),
            Field::string("body"),
            Field::boolean("echo").required().default(json!(false)),
            Field::string("trigger").check(check_header_name),
        ])
        .entity_check(check_exclusive);
        RequestTerminationFactory { schema }
    }
}

impl Default for RequestTerminationFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginFactory for RequestTerminationFactory {
    fn name(&self) -> &'static str {
        "request-termination"
    }

    fn priority(&self) -> i32 {
        2
    }

    fn config_schema(&self) -> &Record {
        &self.schema
    }

    fn build(&self, entity: &PluginEntity, _env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
        let cfg = &entity.config;
        let text = |key: &str| cfg.get(key).and_then(Value::as_str);

        let code = cfg.get("status_code").and_then(Value::as_u64).unwrap_or(503);
        let status = u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| BuildError::field("status_code", format!("invalid status_code {code}")))?;
        let trigger = match text("trigger") {
            Some(name) => Some(Trigger {
                header: HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| BuildError::field("trigger", e.to_string()))?,
                name: name.to_owned(),
            }),
            None => None,
        };
        let message = text("message").or_else(|| default_message(status)).map(str::to_owned);

        // As Kong: a raw body wins over the message; no message at all means an empty answer.
        let (body, content_type) = match text("body") {
            Some(body) => {
                let ct = HeaderValue::from_str(text("content_type").unwrap_or(JSON_UTF8))
                    .map_err(|e| BuildError::field("content_type", e.to_string()))?;
                (Bytes::copy_from_slice(body.as_bytes()), Some(ct))
            }
            None => match &message {
                Some(m) => {
                    let body = serde_json::to_vec(&json!({ "message": m }))
                        .map_err(|e| BuildError::field("message", e.to_string()))?;
                    (Bytes::from(body), Some(HeaderValue::from_static(JSON_UTF8)))
                }
                None => (Bytes::new(), None),
            },
        };

        Ok(Arc::new(RequestTermination {
            status,
            trigger,
            echo: cfg.get("echo").and_then(Value::as_bool).unwrap_or(false),
            message,
            body,
            content_type,
        }))
    }
}

/// Kong's entity check: `message` builds a JSON body, so it cannot be combined with a raw one.
/// Empty strings count as unset, as in Kong.
fn check_exclusive(cfg: &Map<String, Value>) -> Result<(), String> {
    let present = |key: &str| cfg.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if present("message") && (present("content_type") || present("body")) {
        return Err("message cannot be used with content_type or body".into());
    }
    if present("content_type") && !present("body") {
        return Err("content_type requires a body".into());
    }
    Ok(())
}

/// Refuses a content type that could not be sent as a header value, instead of failing at build time.
fn check_content_type(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    HeaderValue::from_str(s).map(|_| ()).map_err(|_| format!("invalid content type '{s}'"))
}

/// The message used when none is configured: Kong's own wording for the statuses it knows, the
/// standard reason phrase otherwise.
fn default_message(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        401 => Some("Unauthorized"),
        404 => Some("Not found"),
        405 => Some("Method not allowed"),
        500 => Some("An unexpected error occurred"),
        502 => Some("Bad Gateway"),
        503 => Some("Service unavailable"),
        _ => status.canonical_reason(),
    }
}

/// The header or query argument whose presence makes the plugin act.
struct Trigger {
    /// For the header lookup (case-insensitive, as header names are).
    header: HeaderName,
    /// For the query lookup (case-sensitive, as Kong's query table is).
    name: String,
}

/// One configured instance.
struct RequestTermination {
    status: StatusCode,
    trigger: Option<Trigger>,
    echo: bool,
    /// The configured message, or the default one for the status.
    message: Option<String>,
    /// The answer's body when not echoing.
    body: Bytes,
    /// The answer's content type when not echoing; `None` with an empty body.
    content_type: Option<HeaderValue>,
}

impl RequestTermination {
    /// Whether this request should be terminated: always without a trigger, else when the request
    /// carries a header or a query argument of that name (whatever its value, even empty).
    fn triggered(&self, req: &Parts) -> bool {
        let Some(t) = &self.trigger else {
            return true;
        };
        req.headers.contains_key(&t.header)
            || req.uri.query().is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == t.name))
    }

    fn respond(&self, body: Bytes, content_type: Option<HeaderValue>) -> Response<Bytes> {
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        if let Some(ct) = content_type {
            resp.headers_mut().insert(CONTENT_TYPE, ct);
        }
        resp
    }

    /// The `echo` answer: the message plus what the gateway saw of the request, shaped like Kong's
    /// (minus the node details Kong adds, which mean nothing here).
    fn echo_body(&self, ctx: &Ctx, req: &Parts) -> Bytes {
        let host = req
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let host = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
        let doc = json!({
            "message": self.message,
            "request": {
                "host": host,
                "method": req.method.as_str(),
                "path": req.uri.path(),
                "uri": req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
                "headers": headers_table(req),
                "query": query_table(req.uri.query().unwrap_or_default()),
                "raw_body": ctx.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            },
            "matched_route": {"id": &*ctx.route_id},
            "matched_service": ctx.service_id.as_ref().map(|id| json!({"id": &**id})),
        });
        // Serializing a `Value` cannot fail; an empty body would still be an answer.
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

impl Plugin for RequestTermination {
    /// Only the echo answer shows the body.
    fn needs_body(&self) -> bool {
        self.echo
    }

    fn access<'a>(&'a self, ctx: &'a mut Ctx, req: &'a mut Parts) -> Step<'a> {
        if !self.triggered(req) {
            return Step::Ready(Flow::Continue);
        }
        let resp = if self.echo {
            self.respond(self.echo_body(ctx, req), Some(HeaderValue::from_static(JSON_UTF8)))
        } else {
            self.respond(self.body.clone(), self.content_type.clone())
        };
        Step::Ready(Flow::Respond(resp))
    }
}

/// Request headers as Kong's `kong.request.get_headers()` shows them: lower-case names, a string for
/// one value, an array for several.
fn headers_table(req: &Parts) -> Value {
    let mut out = Map::with_capacity(req.headers.keys_len());
    for name in req.headers.keys() {
        let mut values: Vec<Value> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let v = if values.len() == 1 { values.swap_remove(0) } else { Value::Array(values) };
        out.insert(name.as_str().to_owned(), v);
    }
    Value::Object(out)
}

/// Query arguments as Kong's `kong.request.get_query()` shows them: decoded, a string for one value,
/// an array for several, and `true` for an argument without `=`.
fn query_table(query: &str) -> Value {
    let mut out = Map::new();
    // `form_urlencoded::parse` decodes but hides whether a piece had a `=`; it yields exactly one pair
    // per non-empty `&`-separated piece, in order, so the raw pieces can be walked alongside.
    let raw = query.split('&').filter(|piece| !piece.is_empty());
    for (piece, (key, value)) in raw.zip(form_urlencoded::parse(query.as_bytes())) {
        let value = if piece.contains('=') { Value::String(value.into_owned()) } else { Value::Bool(true) };
        match out.get_mut(key.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
            None => {
                out.insert(key.into_owned(), value);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::Mode;

    fn plugin(config: Value) -> Arc<dyn Plugin> {
        crate::test_support::build(&RequestTerminationFactory::new(), config)
    }

    fn ctx() -> Ctx {
        crate::test_support::ctx(Some("service-1"))
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    /// Runs `access` and returns the response, or `None` if the plugin let the request through.
    fn run(p: &dyn Plugin, ctx: &mut Ctx, req: &mut Parts) -> Option<Response<Bytes>> {
        match p.access(ctx, req) {
            Step::Ready(Flow::Respond(resp)) => Some(resp),
            Step::Ready(Flow::Continue) => None,
            Step::Ready(Flow::Fail) => panic!("request-termination always builds its answer"),
            Step::Wait(_) => panic!("request-termination never waits"),
        }
    }

    fn json_of(resp: &Response<Bytes>) -> Value {
        serde_json::from_slice(resp.body()).expect("JSON body")
    }

    #[test]
    fn default_config_answers_503_service_unavailable() {
        let p = plugin(json!({}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[CONTENT_TYPE], JSON_UTF8);
        assert_eq!(json_of(&resp), json!({"message": "Service unavailable"}));
    }

    #[test]
    fn configured_message_and_status_are_used() {
        let p = plugin(json!({"status_code": 403, "message": "So long"}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(resp.status(), 403);
        assert_eq!(json_of(&resp), json!({"message": "So long"}));
    }

    #[test]
    fn statuses_kong_has_no_message_for_use_the_reason_phrase() {
        let p = plugin(json!({"status_code": 418}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(json_of(&resp), json!({"message": "I'm a teapot"}));
        let p = plugin(json!({"status_code": 404}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(json_of(&resp), json!({"message": "Not found"}));
    }

    #[test]
    fn statuses_without_any_message_get_an_empty_body() {
        let p = plugin(json!({"status_code": 599}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(resp.status(), 599);
        assert!(resp.body().is_empty());
        assert!(resp.headers().get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn raw_body_is_sent_with_its_content_type() {
        let p = plugin(json!({"status_code": 200, "body": "<h1>bye</h1>", "content_type": "text/html"}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html");
        assert_eq!(resp.body(), "<h1>bye</h1>");

        let p = plugin(json!({"body": "{\"down\":true}"}));
        let resp = run(&*p, &mut ctx(), &mut request("/", &[])).expect("terminated");
        assert_eq!(resp.headers()[CONTENT_TYPE], JSON_UTF8, "JSON is the default content type");
    }

    #[test]
    fn trigger_terminates_only_requests_carrying_the_header_or_query_arg() {
        let p = plugin(json!({"trigger": "X-Stop"}));
        assert!(run(&*p, &mut ctx(), &mut request("/?other=1", &[])).is_none());
        assert!(run(&*p, &mut ctx(), &mut request("/", &[("x-stop", "")])).is_some(), "header names ignore case");
        assert!(run(&*p, &mut ctx(), &mut request("/?a=1&X-Stop", &[])).is_some());
        assert!(run(&*p, &mut ctx(), &mut request("/?x-stop=1", &[])).is_none(), "query names keep case");
    }

    #[test]
    fn echo_describes_the_request() {
        let p = plugin(json!({"status_code": 404, "echo": true}));
        assert!(p.needs_body());
        let mut ctx = ctx();
        ctx.body = Some(Bytes::from_static(b"hello"));
        let mut req = request("/a/b?x=1&x=2&flag&y=%20", &[("host", "api.test:8000"), ("x-h", "1"), ("x-h", "2")]);
        let resp = run(&*p, &mut ctx, &mut req).expect("terminated");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[CONTENT_TYPE], JSON_UTF8);
        assert_eq!(
            json_of(&resp),
            json!({
                "message": "Not found",
                "request": {
                    "host": "api.test",
                    "method": "GET",
                    "path": "/a/b",
                    "uri": "/a/b?x=1&x=2&flag&y=%20",
                    "headers": {"host": "api.test:8000", "x-h": ["1", "2"]},
                    "query": {"x": ["1", "2"], "flag": true, "y": " "},
                    "raw_body": "hello",
                },
                "matched_route": {"id": "route-1"},
                "matched_service": {"id": "service-1"},
            })
        );
    }

    #[test]
    fn requests_pass_through_untouched_when_not_triggered() {
        let p = plugin(json!({"trigger": "x-stop", "echo": true}));
        let mut req = request("/", &[("a", "b")]);
        assert!(run(&*p, &mut ctx(), &mut req).is_none());
        assert_eq!(req.headers.len(), 1);
    }

    #[test]
    fn schema_refuses_message_with_a_raw_body_in_kongs_words() {
        let schema = RequestTerminationFactory::new().schema;
        let errs = schema.validate(&json!({"message": "m", "body": "b"}), Mode::default()).expect_err("refused");
        assert_eq!(errs.lines().collect::<Vec<_>>(), ["@entity: message cannot be used with content_type or body"]);
        let errs = schema.validate(&json!({"content_type": "text/plain"}), Mode::default()).expect_err("refused");
        assert_eq!(errs.lines().collect::<Vec<_>>(), ["@entity: content_type requires a body"]);
        let errs = schema.validate(&json!({"status_code": 600, "trigger": "a b"}), Mode::default()).expect_err("bad");
        assert_eq!(
            errs.lines().collect::<Vec<_>>(),
            [
                "status_code: value should be between 100 and 599",
                "trigger: bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
            ]
        );
        let ok = schema.validate(&json!({"message": "", "body": "b"}), Mode::default());
        assert!(ok.is_ok(), "an empty message counts as unset");
    }
}

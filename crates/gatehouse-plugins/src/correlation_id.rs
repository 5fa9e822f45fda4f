//! `correlation-id`: gives every request an id header, so logs of the gateway, the upstream and the
//! client can be joined.
//!
//! A request that already carries the header keeps its id (the caller started the trace); otherwise one
//! is generated and sent upstream. With `echo_downstream`, the id is also returned to the client.

use crate::check_header_name;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::{BuildEnv, BuildError, Ctx, Flow, Plugin, PluginFactory, Step};
use gatehouse_core::schema::{Field, Record};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// The `correlation-id` plugin kind.
pub struct CorrelationIdFactory {
    schema: Record,
}

impl CorrelationIdFactory {
    /// The plugin kind, with Kong's config schema.
    pub fn new() -> Self {
        let schema = Record::new(vec![
            Field::string("header_name").default(json!("Kong-Request-ID")).check(check_header_name),
            Field::string("generator").required().default(json!("uuid#counter")).one_of(&[
                "uuid",
                "uuid#counter",
                "tracker",
            ]),
            Field::boolean("echo_downstream").required().default(json!(false)),
        ]);
        CorrelationIdFactory { schema }
    }
}

impl Default for CorrelationIdFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginFactory for CorrelationIdFactory {
    fn name(&self) -> &'static str {
        "correlation-id"
    }

    fn priority(&self) -> i32 {
        100001
    }

    fn config_schema(&self) -> &Record {
        &self.schema
    }

    fn build(&self, entity: &PluginEntity, _env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
        let cfg = &entity.config;
        let name = cfg.get("header_name").and_then(Value::as_str).unwrap_or("Kong-Request-ID");
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| BuildError::field("header_name", e.to_string()))?;
        let generator = match cfg.get("generator").and_then(Value::as_str).unwrap_or("uuid#counter") {
            // Kong's tracker joins nginx connection variables we do not have; a random id serves the
            // same purpose (unique per request), only without the connection details in it.
            "uuid" | "tracker" => Generator::Uuid,
            "uuid#counter" => Generator::Counter { prefix: format!("{}#", Uuid::new_v4()), count: AtomicU64::new(0) },
            other => return Err(BuildError::field("generator", format!("unknown generator '{other}'"))),
        };
        Ok(Arc::new(CorrelationId {
            header,
            generator,
            echo_downstream: cfg.get("echo_downstream").and_then(Value::as_bool).unwrap_or(false),
        }))
    }
}

/// How ids are made.
enum Generator {
    /// A random UUID per request.
    Uuid,
    /// One random UUID per instance, then `#1`, `#2`, ...: unique like a UUID per request, but cheaper
    /// and ordered. The instance is rebuilt only when its config changes, and a rebuild draws a new
    /// UUID, so the counter restarting at 1 never repeats an id.
    Counter {
        /// `<uuid>#`
        prefix: String,
        /// Requests numbered so far.
        count: AtomicU64,
    },
}

impl Generator {
    fn generate(&self) -> Option<HeaderValue> {
        match self {
            Generator::Uuid => {
                let mut buf = Uuid::encode_buffer();
                HeaderValue::from_str(Uuid::new_v4().hyphenated().encode_lower(&mut buf)).ok()
            }
            Generator::Counter { prefix, count } => {
                // Only uniqueness matters, not ordering with other memory: relaxed is enough.
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                let mut id = String::with_capacity(prefix.len() + 20);
                id.push_str(prefix);
                // Writing to a `String` cannot fail.
                let _ = write!(id, "{n}");
                // From a `String` the bytes are taken over, not copied.
                HeaderValue::try_from(id).ok()
            }
        }
    }
}

/// The id of the current request, passed from `access` to `header_filter`.
#[derive(Clone)]
struct RequestId(HeaderValue);

/// One configured instance.
struct CorrelationId {
    /// Parsed once at build time rather than per request.
    header: HeaderName,
    generator: Generator,
    echo_downstream: bool,
}

impl Plugin for CorrelationId {
    fn access<'a>(&'a self, ctx: &'a mut Ctx, req: &'a mut Parts) -> Step<'a> {
        // An empty header carries no id to correlate on, so it is replaced like a missing one.
        let has_id = req.headers.get(&self.header).is_some_and(|v| !v.is_empty());
        if !has_id && let Some(id) = self.generator.generate() {
            req.headers.insert(self.header.clone(), id);
        }
        if self.echo_downstream
            && let Some(id) = req.headers.get(&self.header)
        {
            ctx.extensions.insert(RequestId(id.clone()));
        }
        Step::Ready(Flow::Continue)
    }

    fn header_filter(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        if !self.echo_downstream {
            return;
        }
        if let Some(RequestId(v)) = ctx.extensions.remove::<RequestId>() {
            resp.headers.insert(self.header.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::Mode;

    fn plugin(config: Value) -> Arc<dyn Plugin> {
        crate::test_support::build(&CorrelationIdFactory::new(), config)
    }

    fn ctx() -> Ctx {
        crate::test_support::ctx(None)
    }

    fn request(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn response() -> http::response::Parts {
        http::Response::new(()).into_parts().0
    }

    /// Runs `access`, checking the plugin never answers on its own.
    fn access(p: &dyn Plugin, ctx: &mut Ctx, req: &mut Parts) {
        match p.access(ctx, req) {
            Step::Ready(Flow::Continue) => {}
            Step::Ready(Flow::Respond(_) | Flow::Fail) => panic!("correlation-id never answers"),
            Step::Wait(_) => panic!("correlation-id never waits"),
        }
    }

    fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
        headers.get(name).and_then(|v| v.to_str().ok()).expect("header set")
    }

    #[test]
    fn default_generator_numbers_requests_after_one_uuid() {
        let p = plugin(json!({}));
        let mut first = request(&[]);
        let mut second = request(&[]);
        access(&*p, &mut ctx(), &mut first);
        access(&*p, &mut ctx(), &mut second);
        let first = header(&first.headers, "kong-request-id");
        let second = header(&second.headers, "Kong-Request-ID");
        let (uuid, n) = first.split_once('#').expect("uuid#counter");
        assert!(Uuid::parse_str(uuid).is_ok(), "{uuid} is a UUID");
        assert_eq!(n, "1");
        assert_eq!(second, format!("{uuid}#2"));
    }

    #[test]
    fn uuid_and_tracker_generators_make_a_fresh_uuid_per_request() {
        for generator in ["uuid", "tracker"] {
            let p = plugin(json!({"generator": generator, "header_name": "X-Correlation"}));
            let mut a = request(&[]);
            let mut b = request(&[]);
            access(&*p, &mut ctx(), &mut a);
            access(&*p, &mut ctx(), &mut b);
            let (a, b) = (header(&a.headers, "x-correlation"), header(&b.headers, "x-correlation"));
            assert!(Uuid::parse_str(a).is_ok() && Uuid::parse_str(b).is_ok());
            assert_eq!(a, a.to_ascii_lowercase());
            assert_ne!(a, b);
        }
    }

    #[test]
    fn an_incoming_id_is_kept_and_echoed() {
        let p = plugin(json!({"echo_downstream": true}));
        let mut ctx = ctx();
        let mut req = request(&[("kong-request-id", "abc")]);
        access(&*p, &mut ctx, &mut req);
        assert_eq!(header(&req.headers, "kong-request-id"), "abc");
        let mut resp = response();
        p.header_filter(&mut ctx, &mut resp);
        assert_eq!(header(&resp.headers, "kong-request-id"), "abc");
    }

    #[test]
    fn an_empty_incoming_id_is_replaced() {
        let p = plugin(json!({"generator": "uuid"}));
        let mut req = request(&[("kong-request-id", "")]);
        access(&*p, &mut ctx(), &mut req);
        assert!(Uuid::parse_str(header(&req.headers, "kong-request-id")).is_ok());
    }

    #[test]
    fn generated_id_is_echoed_downstream_when_asked() {
        let p = plugin(json!({"echo_downstream": true}));
        let mut ctx = ctx();
        let mut req = request(&[]);
        access(&*p, &mut ctx, &mut req);
        let mut resp = response();
        p.header_filter(&mut ctx, &mut resp);
        assert_eq!(resp.headers.get("kong-request-id"), req.headers.get("kong-request-id"));
    }

    #[test]
    fn the_id_is_not_echoed_by_default() {
        let p = plugin(json!({}));
        let mut ctx = ctx();
        let mut req = request(&[("kong-request-id", "abc")]);
        access(&*p, &mut ctx, &mut req);
        let mut resp = response();
        p.header_filter(&mut ctx, &mut resp);
        assert!(resp.headers.is_empty());
        assert!(ctx.extensions.is_empty(), "nothing is stored for a later phase");
    }

    #[test]
    fn schema_refuses_bad_header_names_and_generators() {
        let schema = CorrelationIdFactory::new().schema;
        let errs = schema
            .validate(&json!({"header_name": "X Id", "generator": "counter"}), Mode::default())
            .expect_err("refused");
        assert_eq!(
            errs.lines().collect::<Vec<_>>(),
            [
                "header_name: bad header name 'X Id', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                "generator: expected one of: uuid, uuid#counter, tracker",
            ]
        );
    }
}

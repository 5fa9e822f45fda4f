use super::*;
use gatehouse_core::schema::Mode;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn plan(config: Value) -> HeaderPlan {
    let mut cfg = json!({"issuer": "https://idp.example/"});
    if let (Value::Object(a), Value::Object(b)) = (&mut cfg, config) {
        a.extend(b);
    }
    let cfg = crate::config::schema().validate(&cfg, Mode::default()).expect("valid config");
    HeaderPlan::build(&Settings::from_config(&cfg).expect("settings")).expect("plan")
}

fn path(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn kong_encoding_of_every_kind_of_value() {
    let e = |v: Value| encode(&v, Encoding::Kong).map(|c| c.into_owned());
    assert_eq!(e(json!("john")), Some("john".into()));
    assert_eq!(e(json!(1622556713)), Some("1622556713".into()));
    assert_eq!(e(json!(1.5)), Some("1.5".into()));
    assert_eq!(e(json!(true)), Some("true".into()));
    assert_eq!(e(json!(false)), None);
    assert_eq!(e(json!(null)), None);
    let obj = json!({"name": "li", "groups": ["default", "it"]});
    assert_eq!(e(obj.clone()), Some(STANDARD.encode(serde_json::to_vec(&obj).expect("json"))));
    assert_eq!(e(json!(["a", "b"])), Some(STANDARD.encode(br#"["a","b"]"#)));
    // Standard, padded base64 (not base64url).
    assert!(e(json!(["a"])).expect("value").ends_with('='));
}

#[test]
fn json_and_list_encodings() {
    let v = json!(["a", "b,c", "say \"hi\"", 3, {"k": 1}]);
    assert_eq!(encode(&v, Encoding::Json).expect("json"), r#"["a","b,c","say \"hi\"",3,{"k":1}]"#);
    assert_eq!(encode(&v, Encoding::List).expect("list"), r#"a, "b,c", "say \"hi\"", 3, "{\"k\":1}""#);
    assert_eq!(encode(&json!({"a": 1}), Encoding::List).expect("list"), r#"{"a":1}"#);
    assert_eq!(encode(&json!("plain"), Encoding::Json).expect("json"), "plain");
}

#[test]
fn search_order_and_empty_values() {
    let intro = obj(json!({"a": "intro", "empty": ""}));
    let access = obj(json!({"a": "access", "b": "access", "empty": "access", "f": false, "arr": []}));
    let id = obj(json!({"b": "id", "c": "id", "f": "id", "arr": ["x"], "obj": {}}));
    let user = obj(json!({"d": "user", "obj": {"k": 1}}));
    let s = Sources {
        introspection: Some(&intro),
        access: Some(&access),
        id: Some(&id),
        userinfo: Some(&user),
        ..Sources::default()
    };
    let get = |p: &str, u| search(&s, &path(&[p]), u).cloned();
    assert_eq!(get("a", false), Some(json!("intro")));
    assert_eq!(get("b", false), Some(json!("access")));
    assert_eq!(get("c", false), Some(json!("id")));
    assert_eq!(get("d", false), None, "userinfo only with search_user_info");
    assert_eq!(get("d", true), Some(json!("user")));
    assert_eq!(get("empty", false), Some(json!("access")), "an empty string is absent: the search goes on");
    assert_eq!(get("f", false), Some(json!("id")), "false is absent");
    assert_eq!(get("arr", false), Some(json!(["x"])), "[] is absent");
    assert_eq!(get("obj", true), Some(json!({"k": 1})), "{{}} is absent");
}

#[test]
fn names_are_sent_with_dashes() {
    assert_eq!(wire_name("authenticated_user").expect("name").as_str(), "authenticated-user");
    assert_eq!(Target::parse("authorization:bearer"), Some(Target::Authorization("Bearer")));
    assert_eq!(Target::parse("X_Access_Token").map(|t| t.name().as_str().to_string()), Some("x-access-token".into()));
}

#[test]
fn spoofed_headers_are_removed_in_every_spelling() {
    let p = plan(
        json!({"upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["authenticated_user"],
        "downstream_id_token_header": "x-id-token"}),
    );
    let mut h = HeaderMap::new();
    for name in [
        "x_authenticated_user",
        "authenticated.user",
        "AUTHENTICATED-USER",
        "x-id_token",
        "x-consumer-id",
        "X_Consumer_Username",
        "x-authenticated-groups",
        "authorization",
        "x-keep",
    ] {
        h.append(HeaderName::from_bytes(name.as_bytes()).expect("name"), HeaderValue::from_static("v"));
    }
    p.strip_spoofed(&mut h);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort();
    assert_eq!(left, ["authorization", "x-keep"]);
}

#[test]
fn control_characters_and_sizes_are_guarded() {
    let p = plan(json!({"max_added_header_size": 40, "max_added_headers_size": 60}));
    let mut c = Collector::new(&p);
    let n = |s: &str| HeaderName::from_bytes(s.as_bytes()).expect("name");
    assert_eq!(c.add(n("x-a"), "", "line\r\nInjected: 1", "a"), Err(Skipped::Control));
    assert_eq!(c.add(n("x-a"), "", "nul\0", "a"), Err(Skipped::Control));
    assert_eq!(c.add(n("x-a"), "", "tab\tx", "a"), Err(Skipped::Control));
    assert_eq!(c.add(n("x-a"), "", "Jürgen ✓", "a"), Ok(()), "UTF-8 passes as it is");
    assert_eq!(c.add(n("x-b"), "", &"y".repeat(40), "b"), Err(Skipped::TooLarge));
    assert_eq!(c.add(n("x-c"), "", &"z".repeat(30), "c"), Ok(()));
    assert_eq!(c.add(n("x-d"), "", &"w".repeat(20), "d"), Err(Skipped::TotalTooLarge));
    assert_eq!(c.out.len(), 2);
    assert_eq!(c.out[0].1.as_bytes(), "Jürgen ✓".as_bytes());
}

#[test]
fn a_plan_builds_every_kind_of_header() {
    let p = plan(json!({
        "upstream_access_token_header": "authorization:basic",
        "upstream_id_token_jwk_header": "x-id-jwk",
        "downstream_session_id_header": "x-session",
        "upstream_headers": [{"header": "x-org", "path": ["org", "id"], "encoding": "list"}],
    }));
    assert_eq!(p.upstream.tokens.len(), 2);
    assert_eq!(p.upstream.tokens[0].target, Target::Authorization("Basic"));
    assert_eq!(p.upstream.claims[0].encoding, Encoding::List);
    assert!(!p.needs_userinfo() && !p.needs_introspection());
    let access = obj(json!({"org": {"id": ["a", "b"]}}));
    let jwk = json!({"kty": "RSA", "n": "x", "e": "AQAB"});
    let src = Sources {
        access: Some(&access),
        access_token: Some("tok"),
        id_jwk: Some(&jwk),
        session_id: Some("sid"),
        ..Sources::default()
    };
    let up = build(&p, &p.upstream, &src);
    assert_eq!(up[0], (http::header::AUTHORIZATION, HeaderValue::from_static("Basic tok")));
    assert_eq!(up[1].0.as_str(), "x-id-jwk");
    assert_eq!(STANDARD.decode(up[1].1.as_bytes()).expect("b64"), serde_json::to_vec(&jwk).expect("json"));
    assert_eq!(up[2], (HeaderName::from_static("x-org"), HeaderValue::from_static("a, b")));
    let down = build(&p, &p.downstream, &src);
    assert_eq!(down, [(HeaderName::from_static("x-session"), HeaderValue::from_static("sid"))]);
    // A symmetric verifying key is never sent.
    let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
    let src = Sources { id_jwk: Some(&oct), ..Sources::default() };
    assert!(build(&p, &p.upstream, &src).is_empty());
}

#[test]
fn session_headers_tell_the_session_and_are_guarded() {
    let p = plan(json!({
        "session_audience": "app",
        "session_request_headers": ["id", "audience", "subject", "timeout", "idling-timeout", "rolling-timeout", "absolute-timeout"],
        "session_response_headers": ["timeout", "timeout"],
    }));
    assert_eq!(p.upstream.session.len(), 7);
    assert_eq!(p.downstream.session, [SessionField::Timeout], "a repeated value sets one header");
    assert!(!p.downstream_is_empty());
    let facts = SessionFacts {
        id: "sid".into(),
        subject: Some("john".into()),
        idling: Some(800),
        rolling: Some(3500),
        absolute: Some(86000),
    };
    let src = Sources { session: Some(&facts), ..Sources::default() };
    let got: Vec<(String, String)> = build(&p, &p.upstream, &src)
        .into_iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().expect("ascii").to_owned()))
        .collect();
    let want = [
        ("session-id", "sid"),
        ("session-audience", "app"),
        ("session-subject", "john"),
        ("session-timeout", "800"),
        ("session-idling-timeout", "800"),
        ("session-rolling-timeout", "3500"),
        ("session-absolute-timeout", "86000"),
    ];
    assert_eq!(got, want.map(|(n, v)| (n.to_owned(), v.to_owned())));

    // A timeout that is off, and a subject that is absent or cannot go on the wire: no header.
    let facts = SessionFacts { subject: Some("a\r\nb".into()), idling: None, ..facts };
    let src = Sources { session: Some(&facts), ..Sources::default() };
    let names: Vec<String> = build(&p, &p.upstream, &src).into_iter().map(|(n, _)| n.as_str().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "session-subject" || n == "session-idling-timeout"), "{names:?}");
    assert!(names.iter().any(|n| n == "session-timeout"));
    // Nothing without a session.
    assert!(build(&p, &p.upstream, &Sources::default()).is_empty());

    // A client's own Session-* headers never reach the upstream.
    let mut h = HeaderMap::new();
    for name in ["session-id", "Session_Subject", "x-session-timeout", "session-other"] {
        h.append(HeaderName::from_bytes(name.as_bytes()).expect("name"), HeaderValue::from_static("forged"));
    }
    p.strip_spoofed(&mut h);
    assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["session-other"]);
}

/// Property tests: whatever a claim holds, its header value never carries a control character
/// (CR, LF, NUL, any other C0 byte, DEL), and encoding never panics.
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Strings rich in what breaks headers: controls, quotes, commas, backslashes, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('\r'),
                Just('\n'),
                Just('\0'),
                Just('\t'),
                Just('\u{7f}'),
                Just(','),
                Just('"'),
                Just('\\'),
                any::<char>(),
                "[ -~]".prop_map(|s| s.chars().next().unwrap_or('a')),
            ],
            0..24,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn claim() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((text(), inner), 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn clean(bytes: &[u8]) -> bool {
        !bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
    }

    proptest! {

        #[test]
        fn header_values_never_hold_control_characters(v in claim(), prefix in prop_oneof![Just(""), Just("Bearer")]) {
            for encoding in [Encoding::Kong, Encoding::Json, Encoding::List] {
                let Some(text) = encode(&v, encoding) else { continue };
                match header_value(&text) {
                    Some(hv) => prop_assert!(clean(hv.as_bytes()), "{:?}", hv),
                    // Refused only for a reason: a control character in the text.
                    None => prop_assert!(!clean(text.as_bytes())),
                }
                let mut c = Collector { max_one: 1 << 16, max_total: 1 << 20, total: 0, out: Vec::new() };
                let name = HeaderName::from_static("x-claim");
                if c.add(name, prefix, &text, "claim").is_ok() {
                    prop_assert!(c.out.iter().all(|(_, hv)| clean(hv.as_bytes())));
                }
            }
        }
    }
}

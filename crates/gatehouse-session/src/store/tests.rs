//! End-to-end checks of the store against a tiny browser cookie jar.

use std::collections::BTreeMap;

use http::header::COOKIE;

use super::*;
use crate::SameSite;

const NOW: i64 = 1_700_000_000;

fn store_with(secret: &[u8], f: impl FnOnce(&mut SessionConfig)) -> SessionStore {
    let mut config = SessionConfig::default();
    f(&mut config);
    SessionStore::new(SessionCodec::new(secret), config).expect("valid config")
}

fn store() -> SessionStore {
    store_with(b"secret", |_| {})
}

/// A browser's view: cookie name to value, updated by `Set-Cookie`, sent as `Cookie`.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn apply(&mut self, set_cookies: &[HeaderValue]) {
        for v in set_cookies {
            let text = v.to_str().expect("ascii");
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// All cookies in one `Cookie` header, after a cookie of another application.
    fn request(&self) -> HeaderMap {
        let mut text = String::from("other=1");
        for (k, v) in &self.0 {
            text.push_str(&format!("; {k}={v}"));
        }
        headers(&[&text])
    }

    /// One `Cookie` header per cookie, in reverse order (as HTTP/2 may send them).
    fn request_split(&self) -> HeaderMap {
        let pairs: Vec<String> = self.0.iter().rev().map(|(k, v)| format!("{k}={v}")).collect();
        headers(&pairs.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(COOKIE, HeaderValue::from_str(v).expect("valid header"));
    }
    h
}

/// Saves `session` at `now` and returns the jar holding the result.
fn saved(store: &SessionStore, session: &mut Session, now: i64) -> Jar {
    let mut jar = Jar::default();
    jar.apply(&store.save(session, now, true, 0).expect("saves"));
    jar
}

fn text(v: &HeaderValue) -> &str {
    v.to_str().expect("ascii")
}

/// The `name=value` part of a `Set-Cookie` value.
fn pair(v: &HeaderValue) -> &str {
    text(v).split(';').next().expect("pair")
}

/// Deterministic filler that does not compress or repeat.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn save_then_open_round_trips() {
    let store = store();
    let mut session = store.new_session(NOW - 10, Some("alice".into()), b"tokens".to_vec());
    let cookies = store.save(&mut session, NOW, true, 0).expect("saves");
    assert_eq!(cookies.len(), 1);
    assert!(text(&cookies[0]).starts_with("session="));
    assert_eq!((session.created_at, session.rolled_at, session.last_seen), (NOW - 10, NOW, NOW));

    let mut jar = Jar::default();
    jar.apply(&cookies);
    let opened = store.open(&jar.request(), NOW + 1).expect("opens");
    assert_eq!(opened, Opened { session: session.clone(), chunks: 1, client: None });
    assert_eq!(opened.session.id_string().len(), 43);
    assert_eq!(store.open(&jar.request_split(), NOW + 1).expect("opens").session, session);
}

#[test]
fn missing_or_empty_cookie_is_missing() {
    let store = store();
    assert_eq!(store.open(&HeaderMap::new(), NOW), Err(OpenError::Missing));
    assert_eq!(store.open(&headers(&["a=1; sessions=x"]), NOW), Err(OpenError::Missing));
    assert_eq!(store.open(&headers(&["session="]), NOW), Err(OpenError::Missing));
}

#[test]
fn tampering_any_character_fails() {
    let store = store();
    let mut session = store.new_session(NOW, None, b"payload".to_vec());
    let jar = saved(&store, &mut session, NOW);
    let value = jar.0["session"].clone();
    for i in 0..value.len() {
        let mut t = value.clone().into_bytes();
        t[i] = if t[i] == b'B' { b'C' } else { b'B' };
        let cookie = format!("session={}", String::from_utf8(t).expect("ascii"));
        let got = store.open(&headers(&[&cookie]), NOW);
        // The first characters carry version and chunk count, the last may leave non-zero
        // trailing bits: those fail as malformed. Every other change fails authentication.
        if (3..value.len() - 1).contains(&i) {
            assert_eq!(got, Err(OpenError::Invalid), "char {i}");
        } else {
            assert!(matches!(got, Err(OpenError::Invalid | OpenError::Malformed)), "char {i}: {got:?}");
        }
    }
}

#[test]
fn value_moved_to_another_name_or_secret_is_invalid() {
    let store = store();
    let mut session = store.new_session(NOW, None, b"payload".to_vec());
    let value = saved(&store, &mut session, NOW).0["session"].clone();

    let other_name = store_with(b"secret", |c| c.cookie_name = "other".into());
    assert_eq!(other_name.open(&headers(&[&format!("other={value}")]), NOW), Err(OpenError::Invalid));

    let other_secret = store_with(b"another secret", |_| {});
    assert_eq!(other_secret.open(&headers(&[&format!("session={value}")]), NOW), Err(OpenError::Invalid));
}

#[test]
fn wrong_audience_is_refused() {
    let a = store_with(b"secret", |c| c.audience = "a".into());
    let b = store_with(b"secret", |c| c.audience = "b".into());
    let mut session = a.new_session(NOW, None, Vec::new());
    let jar = saved(&a, &mut session, NOW);
    assert!(a.open(&jar.request(), NOW).is_ok());
    assert_eq!(b.open(&jar.request(), NOW), Err(OpenError::WrongAudience));
}

#[test]
fn sessions_of_another_issuer_or_client_are_refused() {
    let bound = |issuer: &str, clients: &[&str]| {
        store_with(b"secret", |c| {
            c.issuer = issuer.into();
            c.clients = clients.iter().map(|c| c.to_string()).collect();
        })
    };
    let a = bound("https://a", &["web", "cli"]);
    let mut session = a.new_session_for(Some("cli"), NOW, None, Vec::new());
    assert_eq!((session.issuer.as_str(), session.client.as_deref()), ("https://a", Some("cli")));
    let jar = saved(&a, &mut session, NOW);
    let opened = a.open(&jar.request(), NOW).expect("opens where it was made");
    assert_eq!((opened.session.issuer.as_str(), opened.session.client.as_deref()), ("https://a", Some("cli")));
    assert_eq!(opened.client, Some(1));
    let reordered = bound("https://a", &["cli", "web"]).open(&jar.request(), NOW).expect("opens");
    assert_eq!(reordered.client, Some(0), "found by id, not by position");
    assert_eq!(bound("https://b", &["web", "cli"]).open(&jar.request(), NOW), Err(OpenError::WrongIssuer));
    assert_eq!(bound("https://a", &["web"]).open(&jar.request(), NOW), Err(OpenError::WrongClient));
    assert_eq!(bound("https://a", &[]).open(&jar.request(), NOW), Err(OpenError::WrongClient));
    // A session naming no client opens only where no client is configured.
    let mut session = a.new_session(NOW, None, Vec::new());
    let jar = saved(&a, &mut session, NOW);
    assert_eq!(a.open(&jar.request(), NOW), Err(OpenError::WrongClient));
    assert!(bound("https://a", &[]).open(&jar.request(), NOW).is_ok());
}

#[test]
fn instance_keys_refuse_other_plugins_and_issuers() {
    let store = |plugin: &str, issuer: &str| {
        let config = SessionConfig { issuer: issuer.into(), ..SessionConfig::default() };
        SessionStore::new(SessionCodec::for_instance(b"issuer secret", plugin, issuer), config).expect("valid")
    };
    let a = store("plugin-a", "https://idp");
    let mut session = a.new_session(NOW, None, Vec::new());
    let jar = saved(&a, &mut session, NOW);
    assert!(a.open(&jar.request(), NOW).is_ok());
    assert_eq!(store("plugin-b", "https://idp").open(&jar.request(), NOW), Err(OpenError::Invalid));
    assert_eq!(store("plugin-a", "https://other").open(&jar.request(), NOW), Err(OpenError::Invalid));
}

#[test]
fn rolling_timeout_expires_unless_saved() {
    let store = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (100, 0, 0));
    let mut session = store.new_session(NOW, None, Vec::new());
    let jar = saved(&store, &mut session, NOW);
    assert!(store.open(&jar.request(), NOW + 99).is_ok());
    assert_eq!(store.open(&jar.request(), NOW + 100), Err(OpenError::Expired(Timeout::Rolling)));
    // Saving again rolls the deadline forward.
    let jar = saved(&store, &mut session, NOW + 90);
    assert!(store.open(&jar.request(), NOW + 189).is_ok());
    assert_eq!(store.expires_at(&session), Some(NOW + 190));
}

#[test]
fn idling_timeout_expires_unless_used() {
    let store = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (0, 50, 0));
    let mut session = store.new_session(NOW, None, Vec::new());
    let jar = saved(&store, &mut session, NOW);
    assert!(store.open(&jar.request(), NOW + 49).is_ok());
    assert_eq!(store.open(&jar.request(), NOW + 50), Err(OpenError::Expired(Timeout::Idling)));
}

#[test]
fn absolute_timeout_holds_whatever_the_saves() {
    let store = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (100, 0, 150));
    let mut session = store.new_session(NOW, None, Vec::new());
    saved(&store, &mut session, NOW);
    let jar = saved(&store, &mut session, NOW + 90);
    assert!(store.open(&jar.request(), NOW + 149).is_ok());
    assert_eq!(store.open(&jar.request(), NOW + 150), Err(OpenError::Expired(Timeout::Absolute)));
    // Max-Age stops at the absolute deadline: 60 s left, not the 100 s of the rolling timeout.
    let cookies = store.save(&mut session, NOW + 90, true, 0).expect("saves");
    assert!(text(&cookies[0]).contains("; Max-Age=60;"), "{}", text(&cookies[0]));
}

#[test]
fn earliest_passed_deadline_is_reported() {
    let store = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (100, 50, 200));
    let mut session = store.new_session(NOW, None, Vec::new());
    let jar = saved(&store, &mut session, NOW);
    assert_eq!(store.open(&jar.request(), NOW + 1000), Err(OpenError::Expired(Timeout::Idling)));
}

#[test]
fn zero_disables_every_timeout() {
    let store = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (0, 0, 0));
    let mut session = store.new_session(NOW, None, Vec::new());
    let cookies = store.save(&mut session, NOW, false, 0).expect("saves");
    let set_cookie = text(&cookies[0]);
    assert!(!set_cookie.contains("Max-Age") && !set_cookie.contains("Expires"), "{set_cookie}");
    let mut jar = Jar::default();
    jar.apply(&cookies);
    assert!(store.open(&jar.request(), NOW + 100 * 365 * 86_400).is_ok());
    assert_eq!(store.expires_at(&session), None);
    assert!(!store.needs_save(&session, NOW + 100 * 365 * 86_400));
}

#[test]
fn needs_save_rule() {
    // Kong's defaults: idling 900 s gives a 60 s touch threshold; rolling at 2700 s.
    let store = store();
    let session = store.new_session(NOW, None, Vec::new());
    assert!(!store.needs_save(&session, NOW));
    assert!(!store.needs_save(&session, NOW + 59));
    assert!(store.needs_save(&session, NOW + 60));

    let rolling_only = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout) = (100, 0));
    assert!(!rolling_only.needs_save(&session, NOW + 74));
    assert!(rolling_only.needs_save(&session, NOW + 75));

    let short_idle = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout) = (0, 40));
    assert!(!short_idle.needs_save(&session, NOW + 9));
    assert!(short_idle.needs_save(&session, NOW + 10));

    let tiny_idle = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout) = (0, 2));
    assert!(!tiny_idle.needs_save(&session, NOW));
    assert!(tiny_idle.needs_save(&session, NOW + 1));
}

#[test]
fn large_session_is_chunked_and_reassembled() {
    let store = store();
    let mut session = store.new_session(NOW, Some("bob".into()), bytes(10 * 1024, 7));
    let cookies = store.save(&mut session, NOW, true, 0).expect("saves");
    assert!(cookies.len() >= 3, "{} cookies", cookies.len());
    for (i, c) in cookies.iter().enumerate() {
        // lua-resty-session's names: session, session2, session3, ...
        let want = if i == 0 { "session=".to_owned() } else { format!("session{}=", i + 1) };
        assert!(text(c).starts_with(&want), "{}", text(c));
        assert!(pair(c).len() <= 4096, "cookie {i}'s name=value is {} bytes", pair(c).len());
    }
    let mut jar = Jar::default();
    jar.apply(&cookies);
    let opened = store.open(&jar.request(), NOW).expect("opens");
    assert_eq!((opened.session, opened.chunks), (session.clone(), cookies.len()));
    assert_eq!(store.open(&jar.request_split(), NOW).expect("opens").session, session);

    // Every chunk but the last is full to within the 4-character alignment: chunk 1 holds
    // 4096 - len("session=") characters, the others one less for their digit.
    for c in &cookies[..cookies.len() - 1] {
        assert!(pair(c).len() > 4096 - 4, "{}", pair(c).len());
    }

    let mut gap = Jar(jar.0.clone());
    gap.0.remove("session2");
    assert_eq!(store.open(&gap.request(), NOW), Err(OpenError::Malformed));
    let mut no_tail = Jar(jar.0.clone());
    no_tail.0.remove(&format!("session{}", cookies.len()));
    assert_eq!(store.open(&no_tail.request(), NOW), Err(OpenError::Malformed));
    let mut no_head = Jar(jar.0);
    no_head.0.remove("session");
    assert_eq!(store.open(&no_head.request(), NOW), Err(OpenError::Missing));
}

#[test]
fn small_limits_make_more_chunks_and_attributes_do_not_count() {
    let store = store_with(b"s", |c| {
        c.max_cookie_size = 300;
        c.cookie_domain = Some("example.com".into());
    });
    let mut session = store.new_session(NOW, None, bytes(1500, 3));
    let cookies = store.save(&mut session, NOW, true, 0).expect("saves");
    assert!((7..=9).contains(&cookies.len()), "{}", cookies.len());
    assert!(cookies.iter().all(|c| pair(c).len() <= 300));
    assert!(cookies.iter().any(|c| c.len() > 300), "the attributes come on top");
    let mut jar = Jar::default();
    jar.apply(&cookies);
    assert_eq!(store.open(&jar.request(), NOW).expect("opens").session, session);
}

#[test]
fn nine_cookies_at_most() {
    let store = store();
    // 27,000 bytes of data need 9 cookies of 4096 bytes; 28,000 would need a tenth.
    let mut fits = store.new_session(NOW, None, bytes(27_000, 1));
    let cookies = store.save(&mut fits, NOW, true, 0).expect("nine cookies");
    assert_eq!(cookies.len(), 9);
    assert!(text(&cookies[8]).starts_with("session9="));
    let mut jar = Jar::default();
    jar.apply(&cookies);
    assert_eq!(store.open(&jar.request(), NOW).expect("opens").session, fits);

    let mut too_big = store.new_session(NOW, None, bytes(28_000, 1));
    assert_eq!(store.save(&mut too_big, NOW, true, 0), Err(SaveError::TooLarge { bytes: 28_000 }));
}

#[test]
fn the_old_underscore_chunk_names_are_not_read() {
    // A two-chunk session of a release before 1.0: `session` and `session_2`. The first chunk
    // says two, `session2` is missing: no session, and `session_2` is someone else's cookie.
    let store = store();
    let mut session = store.new_session(NOW, None, bytes(7000, 2));
    let jar = saved(&store, &mut session, NOW);
    let old = format!("session={}; session_2={}", jar.0["session"], jar.0["session2"]);
    assert_eq!(store.open(&headers(&[&old]), NOW), Err(OpenError::Malformed));
    assert_eq!(store.present_chunks(&headers(&[&old])), 1);
    let mut h = headers(&[&old]);
    store.strip(&mut h);
    assert!(h[COOKIE].to_str().expect("ascii").starts_with("session_2="));
}

#[test]
fn shrinking_from_three_chunks_to_one_expires_the_rest() {
    let store = store();
    let mut session = store.new_session(NOW, None, bytes(7000, 11));
    let mut jar = saved(&store, &mut session, NOW);
    assert_eq!(jar.names(), vec!["session", "session2", "session3"]);

    let mut opened = store.open(&jar.request(), NOW).expect("opens");
    assert_eq!(opened.chunks, 3);
    opened.session.data = b"small".to_vec();
    let cookies = store.save(&mut opened.session, NOW + 5, true, opened.chunks).expect("saves");
    assert_eq!(cookies.len(), 3);
    for (c, name) in cookies[1..].iter().zip(["session2=;", "session3=;"]) {
        assert!(text(c).starts_with(name), "{}", text(c));
        assert!(text(c).contains("; Max-Age=0") && text(c).contains("Expires=Thu, 01 Jan 1970"));
    }
    jar.apply(&cookies);
    assert_eq!(jar.names(), vec!["session"]);
    assert_eq!(store.open(&jar.request(), NOW + 5).expect("opens").session.data, b"small");
}

#[test]
fn stray_chunks_are_counted_for_the_next_save() {
    let store = store();
    let mut session = store.new_session(NOW, None, Vec::new());
    let mut jar = saved(&store, &mut session, NOW);
    jar.0.insert("session4".into(), "old".into());
    assert_eq!(store.open(&jar.request(), NOW).expect("opens").chunks, 4);
    assert_eq!(store.present_chunks(&jar.request()), 4);
    assert_eq!(store.present_chunks(&headers(&["a=1"])), 0);
    let cookies = store.save(&mut session, NOW, true, 4).expect("saves");
    jar.apply(&cookies);
    assert_eq!(jar.names(), vec!["session"]);
}

#[test]
fn oversized_session_is_refused() {
    let store = store_with(b"s", |c| c.max_cookie_size = 300);
    let mut session = store.new_session(NOW, None, vec![0; 100_000]);
    assert_eq!(store.save(&mut session, NOW, true, 0), Err(SaveError::TooLarge { bytes: 100_000 }));
}

#[test]
fn attributes_follow_the_config() {
    let cases = [
        (SameSite::Strict, Some("; SameSite=Strict")),
        (SameSite::Lax, Some("; SameSite=Lax")),
        (SameSite::None, Some("; SameSite=None")),
        (SameSite::Default, None),
    ];
    for (same_site, want) in cases {
        let store = store_with(b"s", |c| c.same_site = same_site);
        let mut session = store.new_session(NOW, None, Vec::new());
        let cookie = store.save(&mut session, NOW, true, 0).expect("saves").remove(0);
        let cookie = text(&cookie);
        match want {
            Some(attr) => assert!(cookie.contains(attr), "{cookie}"),
            None => assert!(!cookie.contains("SameSite"), "{cookie}"),
        }
    }

    // Defaults: Path=/, host-only, HttpOnly, Secure per scheme, Max-Age from the idling timeout.
    let store = store();
    let mut session = store.new_session(NOW, None, Vec::new());
    let https = store.save(&mut session, NOW, true, 0).expect("saves").remove(0);
    let value = text(&https).split(';').next().expect("pair").to_owned();
    assert_eq!(
        text(&https),
        format!("{value}; Path=/; Expires=Tue, 14 Nov 2023 22:28:20 GMT; Max-Age=900; SameSite=Lax; Secure; HttpOnly")
    );
    let http = store.save(&mut session, NOW, false, 0).expect("saves").remove(0);
    assert!(!text(&http).contains("Secure"));

    let custom = store_with(b"s", |c| {
        c.cookie_path = "/app".into();
        c.cookie_domain = Some("example.com".into());
        c.http_only = false;
        c.secure = Some(true);
    });
    let cookie = custom.save(&mut session, NOW, false, 0).expect("saves").remove(0);
    let cookie = text(&cookie);
    assert!(cookie.contains("; Path=/app; Domain=example.com;") && cookie.contains("; Secure"), "{cookie}");
    assert!(!cookie.contains("HttpOnly"), "{cookie}");
}

#[test]
fn clear_expires_every_chunk_present() {
    let store = store_with(b"s", |c| c.cookie_domain = Some("example.com".into()));
    let mut session = store.new_session(NOW, None, bytes(7000, 5));
    let mut jar = saved(&store, &mut session, NOW);
    let cleared = store.clear(&jar.request(), false);
    assert_eq!(cleared.len(), 3);
    for (c, name) in cleared.iter().zip(["session", "session2", "session3"]) {
        assert_eq!(
            text(c),
            format!(
                "{name}=; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; SameSite=Lax; HttpOnly"
            )
        );
    }
    jar.apply(&cleared);
    assert!(jar.0.is_empty());
    assert!(store.clear(&headers(&["a=1"]), true).is_empty());
}

#[test]
fn strip_hides_the_session_from_the_upstream() {
    let store = store();
    let mut session = store.new_session(NOW, None, bytes(7000, 9));
    let jar = saved(&store, &mut session, NOW);
    let mut h = jar.request();
    h.append(COOKIE, HeaderValue::from_static("z=\"quoted value\";session_x=kept"));
    store.strip(&mut h);
    let left: Vec<_> = h.get_all(COOKIE).iter().map(text).collect();
    // A header without session cookies is left exactly as sent.
    assert_eq!(left, vec!["other=1", "z=\"quoted value\";session_x=kept"]);

    let mut h = jar.request_split();
    store.strip(&mut h);
    assert!(h.get(COOKIE).is_none());
}

#[test]
fn garbage_never_panics_and_never_opens() {
    let store = store();
    let mut session = store.new_session(NOW, None, b"x".to_vec());
    let good = saved(&store, &mut session, NOW).0["session"].clone();
    let mut inputs: Vec<String> = [
        "session",
        "session=",
        "session=A",
        "session=AQ",
        "session=AQE",
        "session=AQEA",
        "session=AQAA",
        "session=AQ_AAAAA",
        "session=AgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "session===",
        "session=\"\"",
        "session=\"AQEA",
        "session=%41%51",
        ";;;;",
        "=session",
        "session_2=AQEA",
        "session2=AQEA",
        "session=AgIAAAAA; session3=AAAA",
        "session=AgIAAAAA; session2=; session3=AAAA",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Forged headers claiming 9 chunks (all present), 10 and 255 (more than a session may have).
    for (head, last) in [("AgkAAAAA", 9), ("AgoAAAAA", 10), ("Av8AAAAA", 255)] {
        let mut many = format!("session={head}");
        for i in 2..=last {
            many.push_str(&format!("; session{i}=AAAA; session_{i}=AAAA"));
        }
        inputs.push(many);
    }
    // The same chunk many times over: the first occurrence counts, the rest are skipped.
    inputs.push(format!("session=AgIAAAAA{}", "; session2=AAAA".repeat(2000)));
    // Truncations and extensions of a genuine value.
    for n in 0..good.len() {
        inputs.push(format!("session={}", &good[..n]));
    }
    inputs.push(format!("session={good}A"));
    inputs.push(format!("session=\"{good}"));
    // Random printable bytes, with and without a genuine-looking prefix.
    let noise = bytes(64 * 200, 42);
    for chunk in noise.chunks(64) {
        let printable: String = chunk.iter().map(|b| char::from(b'!' + b % 94)).filter(|c| *c != ';').collect();
        inputs.push(format!("session={printable}"));
        inputs.push(format!("session=AQE{printable}"));
    }
    for input in &inputs {
        let Ok(h) = HeaderValue::from_str(input) else { continue };
        let mut map = HeaderMap::new();
        map.insert(COOKIE, h);
        let got = store.open(&map, NOW);
        assert!(got.is_err(), "{input} opened");
        let _ = store.clear(&map, true);
        store.strip(&mut map);
    }
    // Raw non-UTF-8 header bytes too.
    let mut map = HeaderMap::new();
    map.insert(COOKIE, HeaderValue::from_bytes(b"session=\xff\xfe; a=\x80").expect("obs-text is allowed"));
    assert_eq!(store.open(&map, NOW), Err(OpenError::Malformed));
    store.strip(&mut map);
    assert_eq!(map.get(COOKIE).map(HeaderValue::as_bytes), Some(&b"a=\x80"[..]));
}

/// Property tests: whatever a client sends as the session cookie, `open` never panics and never
/// opens it unless it is one we sealed, byte for byte.
mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// The cookies `save` made for `data`, as a jar.
    fn sealed(s: &SessionStore, data: Vec<u8>, subject: Option<String>) -> Jar {
        let mut session = s.new_session(NOW, subject, data);
        let set = s.save(&mut session, NOW, true, 0).expect("fits");
        let mut jar = Jar::default();
        jar.apply(&set);
        jar
    }

    proptest! {

        #[test]
        fn random_cookie_text_never_opens(value in "[!-~]{0,700}", chunks in 0usize..4) {
            let s = store();
            let mut text = format!("session={value}");
            for i in 2..chunks + 2 {
                text.push_str(&format!("; session{i}={value}"));
            }
            prop_assert!(s.open(&headers(&[&text]), NOW).is_err());
        }

        #[test]
        fn random_cookie_bytes_never_open(bytes in vec(any::<u8>(), 0..700)) {
            let s = store();
            let mut value = b"session=".to_vec();
            value.extend_from_slice(&bytes);
            // Bytes a header cannot hold never reach the store.
            if let Ok(hv) = HeaderValue::from_bytes(&value) {
                let mut h = HeaderMap::new();
                h.insert(COOKIE, hv);
                prop_assert!(s.open(&h, NOW).is_err());
            }
        }

        #[test]
        fn a_sealed_cookie_round_trips(data in vec(any::<u8>(), 0..6000), subject in proptest::option::of("[a-z0-9]{0,24}")) {
            let s = store();
            let jar = sealed(&s, data.clone(), subject.clone());
            let opened = s.open(&jar.request(), NOW).expect("opens");
            prop_assert_eq!(&opened.session.data, &data);
            prop_assert_eq!(&opened.session.subject, &subject);
            let opened = s.open(&jar.request_split(), NOW).expect("opens from split headers");
            prop_assert_eq!(opened.session.data, data);
        }

        #[test]
        fn a_mutated_sealed_cookie_never_opens(
            data in vec(any::<u8>(), 0..6000),
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            with in "[A-Za-z0-9_-]",
        ) {
            let s = store();
            let mut jar = sealed(&s, data, None);
            let names: Vec<String> = jar.0.keys().cloned().collect();
            let name = which.get(&names).clone();
            let value = jar.0.get(&name).cloned().unwrap_or_default();
            let i = at.index(value.len().max(1));
            let mut mutated: String = value.chars().take(i).collect();
            mutated.push_str(&with);
            mutated.extend(value.chars().skip(i + 1));
            prop_assume!(mutated != value);
            jar.0.insert(name, mutated);
            prop_assert!(s.open(&jar.request(), NOW).is_err());
            // Nor does one sealed under another secret.
            let other = store_with(b"another secret", |_| {});
            prop_assert!(other.open(&sealed(&s, vec![1], None).request(), NOW).is_err());
        }
    }
}

mod binding {
    use super::*;
    use crate::{Bind, Binding};

    const IP: &str = "192.0.2.7";

    fn bound() -> SessionStore {
        store_with(b"s", |c| c.bind = Bind { ip: true, scheme: true, user_agent: true })
    }

    fn request_binding(s: &SessionStore, ip: &str, https: bool, ua: &[u8]) -> Binding {
        s.binding(ip.parse().expect("ip"), https, ua)
    }

    #[test]
    fn a_bound_session_opens_only_for_the_same_address_scheme_and_user_agent() {
        let s = bound();
        let b = request_binding(&s, IP, true, b"Firefox");
        let mut session = s.new_session(NOW, None, b"tokens".to_vec());
        let mut jar = Jar::default();
        jar.apply(&s.save_bound(&mut session, NOW, true, 0, &b).expect("saves"));
        assert_eq!(s.open_bound(&jar.request(), NOW, &b).expect("opens").session, session);
        for other in [
            request_binding(&s, "192.0.2.8", true, b"Firefox"),
            request_binding(&s, IP, false, b"Firefox"),
            request_binding(&s, IP, true, b"Chrome"),
            request_binding(&s, IP, true, b""),
        ] {
            assert_eq!(s.open_bound(&jar.request(), NOW, &other), Err(OpenError::Invalid));
        }
        // A caller that forgets the binding gets nothing, in either direction.
        assert_eq!(s.open(&jar.request(), NOW), Err(OpenError::Invalid));
        assert_eq!(s.save(&mut session, NOW, true, 0), Err(SaveError::Binding));
    }

    #[test]
    fn only_the_bound_facts_count() {
        let s = store_with(b"s", |c| c.bind = Bind { user_agent: true, ..Bind::default() });
        let b = request_binding(&s, IP, true, b"UA");
        let mut session = s.new_session(NOW, None, Vec::new());
        let mut jar = Jar::default();
        jar.apply(&s.save_bound(&mut session, NOW, true, 0, &b).expect("saves"));
        let elsewhere = request_binding(&s, "2001:db8::1", false, b"UA");
        assert!(s.open_bound(&jar.request(), NOW, &elsewhere).is_ok(), "address and scheme are not bound");
    }

    #[test]
    fn unbound_and_bound_cookies_do_not_open_at_each_other() {
        let (plain, bound) = (store_with(b"s", |_| {}), bound());
        let b = request_binding(&bound, IP, true, b"UA");
        let mut session = plain.new_session(NOW, None, Vec::new());
        let unbound_jar = saved(&plain, &mut session, NOW);
        assert_eq!(bound.open_bound(&unbound_jar.request(), NOW, &b), Err(OpenError::Invalid));
        let mut bound_jar = Jar::default();
        bound_jar.apply(&bound.save_bound(&mut session, NOW, true, 0, &b).expect("saves"));
        assert_eq!(plain.open(&bound_jar.request(), NOW), Err(OpenError::Invalid));
    }

    #[test]
    fn a_huge_user_agent_binds_like_any_other() {
        let s = bound();
        let ua = vec![b'x'; 64 * 1024];
        let b = request_binding(&s, IP, true, &ua);
        let mut session = s.new_session(NOW, None, Vec::new());
        let mut jar = Jar::default();
        jar.apply(&s.save_bound(&mut session, NOW, true, 0, &b).expect("saves"));
        assert!(s.open_bound(&jar.request(), NOW, &b).is_ok());
        assert_eq!(
            s.open_bound(&jar.request(), NOW, &request_binding(&s, IP, true, &ua[1..])),
            Err(OpenError::Invalid)
        );
    }
}

mod remember {
    use super::*;
    use crate::Remember;

    fn with_remember(f: impl FnOnce(&mut Remember)) -> SessionStore {
        let mut r = Remember::default();
        f(&mut r);
        store_with(b"s", |c| c.remember = Some(r))
    }

    #[test]
    fn the_remember_cookie_is_its_own_persistent_cookie_under_the_same_key() {
        let s = with_remember(|_| {});
        let r = s.remember().expect("on");
        assert_eq!(r.config().cookie_name, "remember");
        assert_eq!(
            (r.config().rolling_timeout, r.config().idling_timeout, r.config().absolute_timeout),
            (604_800, 0, 2_592_000)
        );
        assert!(r.remember().is_none());
        assert!(store().remember().is_none(), "off by default");

        let mut session = s.new_session(NOW, Some("alice".into()), b"tokens".to_vec());
        let set = r.save(&mut session, NOW, true, 0).expect("saves");
        assert_eq!(set.len(), 1);
        let cookie = text(&set[0]);
        assert!(cookie.starts_with("remember="), "{cookie}");
        assert!(cookie.contains("; Max-Age=604800;"), "Max-Age is the rolling timeout: {cookie}");
        let mut jar = Jar::default();
        jar.apply(&set);
        assert_eq!(r.open(&jar.request(), NOW + 604_799).expect("opens").session, session);
        assert_eq!(s.open(&jar.request(), NOW), Err(OpenError::Missing), "not a session cookie");
        // Moved under the session cookie's name, it does not authenticate.
        let moved = format!("session={}", jar.0["remember"]);
        assert_eq!(s.open(&headers(&[&moved]), NOW), Err(OpenError::Invalid));
    }

    #[test]
    fn remember_timeouts_hold() {
        let s = with_remember(|r| (r.rolling_timeout, r.absolute_timeout) = (100, 150));
        let r = s.remember().expect("on");
        let mut session = s.new_session(NOW, None, Vec::new());
        let jar = saved(r, &mut session, NOW);
        assert_eq!(r.open(&jar.request(), NOW + 100), Err(OpenError::Expired(Timeout::Rolling)));
        let jar = saved(r, &mut session, NOW + 90);
        assert!(r.open(&jar.request(), NOW + 149).is_ok(), "no idling timeout: a week unused is fine");
        assert_eq!(r.open(&jar.request(), NOW + 150), Err(OpenError::Expired(Timeout::Absolute)));

        let forever = with_remember(|r| (r.rolling_timeout, r.absolute_timeout) = (0, 0));
        let mut session = forever.new_session(NOW, None, Vec::new());
        let set = forever.remember().expect("on").save(&mut session, NOW, true, 0).expect("saves");
        assert!(text(&set[0]).contains("; Max-Age=34560000;"), "400 days, never a browser-session cookie");
    }

    #[test]
    fn strip_and_clear_cover_both_cookies() {
        let s = with_remember(|_| {});
        let mut session = s.new_session(NOW, None, bytes(7000, 4));
        let mut jar = saved(&s, &mut session, NOW);
        jar.apply(&s.remember().expect("on").save(&mut session, NOW, true, 0).expect("saves"));
        assert_eq!(jar.names(), ["remember", "remember2", "remember3", "session", "session2", "session3"]);
        let cleared = s.clear(&jar.request(), true);
        assert_eq!(cleared.len(), 6);
        jar.apply(&cleared);
        assert!(jar.0.is_empty());

        let mut jar = Jar::default();
        jar.apply(&s.remember().expect("on").save(&mut session, NOW, true, 0).expect("saves"));
        let mut h = jar.request();
        store().strip(&mut h);
        assert!(h[COOKIE].to_str().expect("ascii").contains("remember="), "a store without remember leaves it");
        s.strip(&mut h);
        assert_eq!(h[COOKIE], "other=1");
    }
}

#[test]
fn a_rolling_only_store_for_short_lived_state() {
    // The authorization cookie of the code flow: a rolling timeout, no idling or absolute one.
    let s = store_with(b"s", |c| (c.rolling_timeout, c.idling_timeout, c.absolute_timeout) = (600, 0, 0));
    let mut session = s.new_session(NOW, None, b"state".to_vec());
    let cookies = s.save(&mut session, NOW, true, 0).expect("saves");
    assert!(text(&cookies[0]).contains("; Max-Age=600;"), "{}", text(&cookies[0]));
    let mut jar = Jar::default();
    jar.apply(&cookies);
    assert!(s.open(&jar.request(), NOW + 599).is_ok(), "no idling timeout ends it early");
    assert_eq!(s.open(&jar.request(), NOW + 600), Err(OpenError::Expired(Timeout::Rolling)));
    assert_eq!(s.deadlines_of(&session), Deadlines { idling: None, rolling: Some(NOW + 600), absolute: None });
    assert!(!s.needs_save(&session, NOW + 449), "no touch without an idling timeout");
}

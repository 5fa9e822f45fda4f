//! The Admin API, driven over HTTP like a Kong user would.

use super::util::{Gateway, client, get, json, post, tempdir};
use serde_json::{Value, json};

#[tokio::test]
async fn services_routes_consumers_and_plugins_support_crud_in_json() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;

    let (st, svc) = post(&format!("{a}/services"), json!({"name": "echo", "url": "http://127.0.0.1:9/base"})).await;
    assert_eq!(st, 201, "{svc}");
    assert_eq!(svc["protocol"], "http");
    assert_eq!(svc["host"], "127.0.0.1");
    assert_eq!(svc["port"], 9);
    assert_eq!(svc["path"], "/base");
    assert_eq!(svc["retries"], 5);
    assert_eq!(svc["connect_timeout"], 60000);
    assert_eq!(svc["tags"], Value::Null);
    assert!(svc["created_at"].as_i64().unwrap() > 1_600_000_000);
    let sid = svc["id"].as_str().unwrap().to_string();

    let (st, route) = post(&format!("{a}/services/echo/routes"), json!({"name": "r1", "paths": ["/echo"]})).await;
    assert_eq!(st, 201, "{route}");
    assert_eq!(route["service"]["id"], sid.as_str());
    assert_eq!(route["strip_path"], true);
    assert_eq!(route["protocols"], json!(["http", "https"]));
    assert_eq!(route["path_handling"], "v0");

    let (st, consumer) = post(&format!("{a}/consumers"), json!({"username": "alice", "custom_id": "a-1"})).await;
    assert_eq!(st, 201, "{consumer}");

    let (st, plugin) =
        post(&format!("{a}/routes/r1/plugins"), json!({"name": "request-termination", "config": {"status_code": 418}}))
            .await;
    assert_eq!(st, 201, "{plugin}");
    assert_eq!(plugin["route"]["id"], route["id"]);
    assert_eq!(plugin["service"], Value::Null);
    assert_eq!(plugin["config"]["status_code"], 418);
    assert_eq!(plugin["config"]["message"], Value::Null, "unset config fields are null");
    assert_eq!(plugin["enabled"], true);
    assert_eq!(plugin["protocols"], json!(["grpc", "grpcs", "http", "https"]));
    let pid = plugin["id"].as_str().unwrap().to_string();

    // Read by id and by name, lists and nested lists.
    assert_eq!(get(&format!("{a}/services/{sid}")).await.1["name"], "echo");
    assert_eq!(get(&format!("{a}/services/echo")).await.1["id"], sid.as_str());
    assert_eq!(get(&format!("{a}/consumers/alice")).await.1["custom_id"], "a-1");
    assert_eq!(get(&format!("{a}/routes")).await.1["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(&format!("{a}/services/echo/routes")).await.1["data"][0]["name"], "r1");
    assert_eq!(get(&format!("{a}/routes/r1/plugins")).await.1["data"][0]["id"], pid.as_str());
    assert_eq!(get(&format!("{a}/routes/r1/plugins/{pid}")).await.0, 200);
    assert_eq!(get(&format!("{a}/services/echo/plugins/{pid}")).await.0, 404, "plugin is not the service's");
    assert_eq!(get(&format!("{a}/plugins/{pid}")).await.1["name"], "request-termination");

    // Delete: the service is referenced by its route, so it goes last.
    let c = client();
    let (st, body) = json(c.delete(format!("{a}/services/echo")).send().await.unwrap()).await;
    assert_eq!(st, 400);
    assert_eq!(
        body,
        json!({"code": 4, "name": "foreign key violation",
               "message": "an existing 'routes' entity references this 'services' entity",
               "fields": {"@referenced_by": "routes"}})
    );
    assert_eq!(c.delete(format!("{a}/routes/r1")).send().await.unwrap().status(), 204);
    assert_eq!(get(&format!("{a}/plugins/{pid}")).await.0, 404, "route plugins are deleted with the route");
    assert_eq!(c.delete(format!("{a}/services/echo")).send().await.unwrap().status(), 204);
    assert_eq!(c.delete(format!("{a}/consumers/alice")).send().await.unwrap().status(), 204);
    assert_eq!(c.delete(format!("{a}/consumers/alice")).send().await.unwrap().status(), 204, "missing is 204");
    assert_eq!(get(&format!("{a}/services/echo")).await, (404, json!({"message": "Not found"})));
}

#[tokio::test]
async fn form_and_multipart_bodies_use_kongs_key_syntax() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let c = client();

    let (st, svc) = json(
        c.post(format!("{a}/services"))
            .form(&[
                ("name", "svc"),
                ("host", "127.0.0.1"),
                ("port", "9091"),
                ("retries", "2"),
                ("tags[]", "a"),
                ("tags[]", "b"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{svc}");
    assert_eq!(svc["port"], 9091, "form strings are coerced to the field type");
    assert_eq!(svc["tags"], json!(["a", "b"]));

    let (st, route) = json(
        c.post(format!("{a}/routes"))
            .form(&[
                ("service.name", "svc"),
                ("paths[1]", "/one"),
                ("paths[2]", "/two"),
                ("methods", "GET"),
                ("methods", "POST"),
                ("strip_path", "false"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{route}");
    assert_eq!(route["service"]["id"], svc["id"], "service.name resolves to the id");
    assert_eq!(route["paths"], json!(["/one", "/two"]));
    assert_eq!(route["methods"], json!(["GET", "POST"]));
    assert_eq!(route["strip_path"], false);

    let form = reqwest::multipart::Form::new()
        .text("name", "request-termination")
        .text("service.id", svc["id"].as_str().unwrap().to_string())
        .text("config.status_code", "403")
        .text("config.message", "go away");
    let (st, plugin) = json(c.post(format!("{a}/plugins")).multipart(form).send().await.unwrap()).await;
    assert_eq!(st, 201, "{plugin}");
    assert_eq!(plugin["config"]["status_code"], 403);
    assert_eq!(plugin["config"]["message"], "go away");
    assert_eq!(plugin["service"]["id"], svc["id"]);

    // An empty form value sets the field to null.
    let pid = plugin["id"].as_str().unwrap();
    let (st, patched) =
        json(c.patch(format!("{a}/plugins/{pid}")).form(&[("config.message", "")]).send().await.unwrap()).await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["config"]["message"], Value::Null);
    assert_eq!(patched["config"]["status_code"], 403, "other config fields are kept");
}

#[tokio::test]
async fn patch_merges_and_put_upserts() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let c = client();
    let (_, svc) = post(&format!("{a}/services"), json!({"name": "s", "host": "h1", "port": 81, "tags": ["x"]})).await;
    let id = svc["id"].as_str().unwrap();

    let (st, p) = json(c.patch(format!("{a}/services/s")).json(&json!({"host": "h2"})).send().await.unwrap()).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!((p["host"].as_str(), p["port"].as_i64(), p["tags"].clone()), (Some("h2"), Some(81), json!(["x"])));
    assert_eq!(p["created_at"], svc["created_at"]);
    assert_eq!(p["id"], id);

    let (st, p) =
        json(c.patch(format!("{a}/services/{id}")).json(&json!({"url": "http://h3:99/p"})).send().await.unwrap()).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!((p["host"].as_str(), p["port"].as_i64(), p["path"].as_str()), (Some("h3"), Some(99), Some("/p")));

    // PUT replaces the whole entity: fields not given return to their defaults.
    let (st, p) =
        json(c.put(format!("{a}/services/{id}")).json(&json!({"name": "s", "host": "h4"})).send().await.unwrap()).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!((p["port"].as_i64(), p["path"].clone(), p["tags"].clone()), (Some(80), Value::Null, Value::Null));
    assert_eq!(p["created_at"], svc["created_at"]);

    // PUT with a new id or a new name creates.
    let new_id = "6f0b8f1e-1d2c-4c41-9a55-0c3c4b0d9e11";
    let (st, p) =
        json(c.put(format!("{a}/services/{new_id}")).json(&json!({"host": "h5"})).send().await.unwrap()).await;
    assert_eq!((st, p["id"].as_str()), (200, Some(new_id)));
    let (st, p) =
        json(c.put(format!("{a}/consumers/bob")).json(&json!({"custom_id": "b"})).send().await.unwrap()).await;
    assert_eq!((st, p["username"].as_str()), (200, Some("bob")));

    // PATCH of something missing is 404.
    let (st, _) = json(c.patch(format!("{a}/services/nope")).json(&json!({"host": "x"})).send().await.unwrap()).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn lists_paginate_with_opaque_offsets_and_filter_by_tags() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    for i in 0..5 {
        let tags = if i % 2 == 0 { json!(["even"]) } else { json!(["odd"]) };
        let (st, _) = post(&format!("{a}/consumers"), json!({"username": format!("u{i}"), "tags": tags})).await;
        assert_eq!(st, 201);
    }
    let mut names = Vec::new();
    let mut url = format!("{a}/consumers?size=2");
    loop {
        let (st, page) = get(&url).await;
        assert_eq!(st, 200, "{page}");
        for c in page["data"].as_array().unwrap() {
            names.push(c["username"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(page["offset"].is_string());
                assert!(next.starts_with("/consumers?offset="), "{next}");
                url = format!("{a}{next}");
            }
            None => {
                assert!(page.get("offset").is_none(), "no offset on the last page");
                break;
            }
        }
    }
    names.sort();
    assert_eq!(names, ["u0", "u1", "u2", "u3", "u4"]);

    let (_, even) = get(&format!("{a}/consumers?tags=even")).await;
    assert_eq!(even["data"].as_array().unwrap().len(), 3);
    let (_, either) = get(&format!("{a}/consumers?tags=even/odd")).await;
    assert_eq!(either["data"].as_array().unwrap().len(), 5);
    let (_, both) = get(&format!("{a}/consumers?tags=even,odd")).await;
    assert_eq!(both["data"].as_array().unwrap().len(), 0);

    assert_eq!(get(&format!("{a}/consumers?size=abc")).await.1["code"], 9);
    assert_eq!(
        get(&format!("{a}/consumers?size=1001")).await.1["message"],
        "size must be an integer between 1 and 1000"
    );
    let (st, bad) = get(&format!("{a}/consumers?offset=%21%21")).await;
    assert_eq!((st, bad["code"].as_i64()), (400, Some(7)));
    assert_eq!(bad["message"], "'!!' is not a valid offset: bad base64 encoding");
}

#[tokio::test]
async fn errors_have_kongs_shapes_and_codes() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;

    let (st, e) = post(&format!("{a}/services"), json!({"port": 99999})).await;
    assert_eq!(st, 400);
    assert_eq!(
        e,
        json!({"code": 2, "name": "schema violation",
               "message": "2 schema violations (host: required field missing; port: value should be between 0 and 65535)",
               "fields": {"host": "required field missing", "port": "value should be between 0 and 65535"}})
    );

    let (st, e) = post(&format!("{a}/plugins"), json!({"name": "no-such-plugin"})).await;
    assert_eq!(st, 400);
    assert_eq!(
        e["message"],
        "schema violation (name: plugin 'no-such-plugin' not enabled; add it to the 'plugins' configuration property)"
    );

    let (st, e) = post(&format!("{a}/routes"), json!({})).await;
    assert_eq!(st, 400);
    assert_eq!(
        e["fields"]["@entity"],
        json!(["must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"])
    );

    let (st, e) = post(&format!("{a}/routes"), json!({"paths": ["nope"]})).await;
    assert_eq!(st, 400);
    assert_eq!(e["message"], "schema violation (paths.1: should start with: / (fixed path) or ~/ (regex path))");
    assert_eq!(e["fields"], json!({"paths": ["should start with: / (fixed path) or ~/ (regex path)"]}));

    let missing = "0d3c7a52-6f5e-4a8c-9d7b-2f1e0c9b8a76";
    let (st, e) = post(&format!("{a}/routes"), json!({"paths": ["/x"], "service": {"id": missing}})).await;
    assert_eq!(st, 400);
    assert_eq!(
        e,
        json!({"code": 4, "name": "foreign key violation",
               "message": format!("the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'services' entity."),
               "fields": {"service": {"id": missing}}})
    );

    post(&format!("{a}/services"), json!({"name": "dup", "host": "h"})).await;
    let (st, e) = post(&format!("{a}/services"), json!({"name": "dup", "host": "h"})).await;
    assert_eq!(st, 409);
    assert_eq!(
        e,
        json!({"code": 5, "name": "unique constraint violation",
               "message": "UNIQUE violation detected on '{name=\"dup\"}'", "fields": {"name": "dup"}})
    );

    let (st, _) = post(&format!("{a}/services/dup/plugins"), json!({"name": "correlation-id"})).await;
    assert_eq!(st, 201);
    let (st, e) = post(&format!("{a}/services/dup/plugins"), json!({"name": "correlation-id"})).await;
    assert_eq!(st, 409, "one plugin of a name per scope: {e}");

    assert_eq!(get(&format!("{a}/nothing-here")).await, (404, json!({"message": "Not found"})));
    let (st, e) = json(client().delete(format!("{a}/services")).send().await.unwrap()).await;
    assert_eq!((st, e), (405, json!({"message": "Method not allowed"})));
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let c = client();

    let send = |body: &'static str, ct: &'static str| {
        let c = c.clone();
        let url = format!("{a}/services");
        async move { json(c.post(url).header("content-type", ct).body(body).send().await.unwrap()).await }
    };
    let (st, e) = send("{\"host\": ", "application/json").await;
    assert_eq!((st, e), (400, json!({"message": "Cannot parse JSON body"})));
    let (st, e) = send("[1,2]", "application/json").await;
    assert_eq!((st, e["message"].as_str()), (400, Some("Cannot parse JSON body")));
    let (st, e) = send("host=h&port[=1", "application/x-www-form-urlencoded").await;
    assert_eq!(st, 400, "{e}");
    let (st, e) = send("host=h&port=eighty", "application/x-www-form-urlencoded").await;
    assert_eq!((st, e["fields"]["port"].as_str()), (400, Some("expected an integer")));
    let (st, e) = send("{\"host\": \"h\", \"colour\": \"red\"}", "application/json").await;
    assert_eq!((st, e["fields"]["colour"].as_str()), (400, Some("unknown field")));
    let (st, e) = send("{\"host\": 5}", "application/json").await;
    assert_eq!((st, e["fields"]["host"].as_str()), (400, Some("expected a string")));
    let (st, _) = send("<xml/>", "application/xml").await;
    assert_eq!(st, 415);

    let huge = format!("{{\"host\": \"h\", \"name\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let resp =
        c.post(format!("{a}/services")).header("content-type", "application/json").body(huge).send().await.unwrap();
    let (st, e) = json(resp).await;
    assert_eq!((st, e), (413, json!({"message": "Payload too large"})));

    let (_, list) = get(&format!("{a}/services")).await;
    assert_eq!(list["data"], json!([]), "nothing was written");
}

#[tokio::test]
async fn entities_survive_a_restart() {
    let dir = tempdir();
    let id = {
        let gw = Gateway::start(dir.path());
        let (_, svc) = post(&format!("{}/services", gw.admin), json!({"name": "keep", "host": "h"})).await;
        post(&format!("{}/services/keep/routes", gw.admin), json!({"name": "kr", "paths": ["/k"]})).await;
        svc["id"].as_str().unwrap().to_string()
    };
    let gw = Gateway::start(dir.path());
    let (st, svc) = get(&format!("{}/services/keep", gw.admin)).await;
    assert_eq!((st, svc["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(get(&format!("{}/routes/kr", gw.admin)).await.0, 200);
}

#[tokio::test]
async fn node_info_status_and_schemas_answer() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let (st, root) = get(&format!("{a}/")).await;
    assert_eq!(st, 200);
    assert!(root["node_id"].is_string());
    assert!(root["plugins"]["available_on_server"]["request-termination"]["priority"].is_number());
    assert_eq!(root["configuration"]["database"], "sqlite");
    let (st, status) = get(&format!("{a}/status")).await;
    assert_eq!((st, status["database"]["reachable"].as_bool()), (200, Some(true)));
    assert!(status["server"]["total_requests"].is_number());
    let (st, schema) = get(&format!("{a}/schemas/plugins/request-termination")).await;
    assert_eq!(st, 200);
    let fields = schema["fields"].as_array().unwrap();
    let config = fields.iter().find_map(|f| f.get("config")).unwrap();
    assert_eq!(config["type"], "record");
    assert_eq!(get(&format!("{a}/schemas/plugins/nope")).await.0, 404);
}

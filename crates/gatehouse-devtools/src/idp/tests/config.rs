//! The users file and the built-in users.

use super::super::{Client, ConfigError, User};
use super::*;

#[test]
fn builtin_users_and_clients() {
    let config = IdpConfig::default();
    let john = config.users.iter().find(|u| u.username == "john").unwrap();
    assert_eq!(john.password, "doe");
    assert_eq!(john.full_name().as_deref(), Some("John Doe"));
    assert_eq!(john.subject(), john.subject(), "stable");
    assert_eq!(john.subject().len(), 36, "a uuid");
    let jane = config.users.iter().find(|u| u.username == "jane").unwrap();
    assert_eq!(jane.roles, ["admin"]);
    assert_eq!(jane.groups, ["users", "admins"]);
    assert_ne!(john.subject(), jane.subject());
    let ids: Vec<&str> = config.clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["gatehouse", "gatehouse-public"]);
    assert!(config.clients[1].is_public());
    config.validate().unwrap();
}

#[test]
fn a_yaml_users_file_replaces_the_sections_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yml");
    std::fs::write(
        &path,
        "users:\n  - username: alice\n    password: pw\n    sub: alice-1\n    email: a@example.com\n    \
         groups: [ops]\n    claims: {tenant: t1}\naccess_token_ttl: 60\n",
    )
    .unwrap();
    let config = IdpConfig::from_file(&path).unwrap();
    assert_eq!(config.users.len(), 1);
    assert_eq!(config.users[0].subject(), "alice-1");
    assert_eq!(config.users[0].claims["tenant"], "t1");
    assert_eq!(config.access_token_ttl, 60);
    assert_eq!(config.clients.len(), 2, "clients stay built in");
}

#[test]
fn a_json_users_file_with_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.json");
    let file = json!({
        "clients": [
            {"client_id": "api", "client_secret": "s", "redirect_uris": ["https://app.example/cb"], "audience": "api"},
            {"client_id": "multi", "audience": ["a", "b"]},
        ]
    });
    std::fs::write(&path, file.to_string()).unwrap();
    let config = IdpConfig::from_file(&path).unwrap();
    assert_eq!(config.clients[0].audience, ["api"]);
    assert_eq!(config.clients[1].audience, ["a", "b"]);
    assert_eq!(config.users.len(), 2, "users stay built in");
}

#[test]
fn bad_users_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let typo = write("typo.yml", "users:\n  - username: a\n    pasword: x\n");
    assert!(matches!(IdpConfig::from_file(typo), Err(ConfigError::Parse { .. })));
    let twice = write("twice.yml", "users:\n  - {username: a, password: x}\n  - {username: a, password: y}\n");
    assert!(matches!(IdpConfig::from_file(twice), Err(ConfigError::Invalid(_))));
    let jwks = write("jwks.yml", "clients:\n  - client_id: c\n    jwks: {nokeys: []}\n");
    assert!(matches!(IdpConfig::from_file(jwks), Err(ConfigError::Invalid(_))));
    assert!(matches!(IdpConfig::from_file(dir.path().join("missing.yml")), Err(ConfigError::Read { .. })));
    let issuer = IdpConfig { issuer: Some("ftp://x".into()), ..IdpConfig::default() };
    assert!(issuer.validate().is_err());
    let empty = IdpConfig { users: vec![User::default()], ..IdpConfig::default() };
    assert!(empty.validate().is_err());
    let client = IdpConfig {
        clients: vec![Client { client_id: "c".into(), redirect_uris: vec!["/cb".into()], ..Client::default() }],
        ..IdpConfig::default()
    };
    assert!(client.validate().is_err());
}

//! The whole game flow, on the standalone server and on the cluster:
//! login → me → character → chat until 429 → profile miss/hit → combat →
//! leaderboard → trade → logout-others → logout → 401.

use aeturnis_demo::DemoConfig;
use aeturnis_testkit::{topology_tests, TestCtx};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::Api;

async fn should_serve_the_whole_game_flow(ctx: TestCtx) -> anyhow::Result<()> {
    let api = Api::new(&ctx, DemoConfig::defaults()?).await?;

    // login twice as alice: two sessions
    let alice = api.login("alice").await;
    let alice_phone = api.login("alice").await;
    assert_ne!(alice, alice_phone);
    let me = api.get("/me", Some(&alice)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"], "alice");
    assert_eq!(me.body["character"], Value::Null);
    assert_eq!(me.body["sessions"], 2);
    assert!(me.body["expires_at"].as_u64().unwrap() > me.body["created_at"].as_u64().unwrap());

    // bind a character
    let bound = api
        .post(
            "/me/character",
            Some(&alice),
            json!({ "character": "Ælfrida" }),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
    assert_eq!(
        api.get("/me", Some(&alice)).await.body["character"],
        "Ælfrida"
    );

    // chat until the chat preset (10 per minute per user) says no
    for i in 1..=10 {
        let sent = api
            .post(
                "/chat",
                Some(&alice),
                json!({ "message": format!("hello {i}") }),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        assert_eq!(sent.body["ok"], true);
        assert_eq!(sent.body["remaining"], 10 - i);
    }
    let denied = api
        .post(
            "/chat",
            Some(&alice_phone),
            json!({ "message": "one too many" }),
        )
        .await;
    assert_eq!(
        denied.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        denied.body
    );
    let retry: u64 = denied.header("retry-after").unwrap().parse()?;
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // the chat policy first (its route layer), then the API limit's
    let policy = denied.header("ratelimit-policy").unwrap();
    assert!(
        policy.starts_with("\"chat\";q=10;w=60, \"api\";q=100;w=60"),
        "{policy}"
    );
    assert!(denied
        .header("ratelimit")
        .unwrap()
        .starts_with("\"chat\";r=0;t="));
    assert!(denied.body["detail"].as_str().unwrap().contains("chat"));
    let log = api.get("/chat", None).await;
    let messages = log.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 10);
    assert_eq!(messages[0]["message"], "hello 1");
    assert_eq!(messages[9]["message"], "hello 10");
    assert_eq!(messages[9]["character"], "Ælfrida");

    // cache-aside: a miss loads the "database", then the cache answers
    let first = api.get("/players/bob/profile", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(first.body["name"], "Bob of the Marsh");
    let second = api.get("/players/bob/profile", None).await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.body, first.body);
    let nobody = api.get("/players/nobody/profile", None).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    assert!(nobody.body["detail"].is_string());

    // combat and the leaderboard
    let bob = api.login("bob").await;
    for expected in [30.0, 60.0] {
        let hit = api
            .post(
                "/combat/action",
                Some(&alice),
                json!({ "target": "bob", "damage": 30 }),
            )
            .await;
        assert_eq!(hit.status, StatusCode::OK, "{}", hit.body);
        assert_eq!(hit.body["score"], expected);
    }
    let hit = api
        .post(
            "/combat/action",
            Some(&bob),
            json!({ "target": "alice", "damage": 12 }),
        )
        .await;
    assert_eq!(hit.body["score"], 12.0);
    let board = api.get("/leaderboard", None).await;
    assert_eq!(
        board.body["leaderboard"],
        json!([
            { "rank": 1, "player": "alice", "score": 60.0 },
            { "rank": 2, "player": "bob", "score": 12.0 },
        ])
    );

    // trades in both directions take the same lock: the fence grows
    let one = api
        .post(
            "/trade",
            Some(&alice),
            json!({ "with": "bob", "item": "sword" }),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["trade"], "done");
    let two = api
        .post(
            "/trade",
            Some(&bob),
            json!({ "with": "alice", "item": "shield" }),
        )
        .await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    assert_eq!(
        two.body["fence"].as_u64().unwrap(),
        one.body["fence"].as_u64().unwrap() + 1
    );

    // logout-others ends the phone session, logout the current one
    let others = api
        .call(Method::POST, "/auth/logout-others", Some(&alice), None)
        .await;
    assert_eq!(others.status, StatusCode::OK, "{}", others.body);
    assert_eq!(others.body["revoked"], 1);
    assert_eq!(
        api.get("/me", Some(&alice_phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.get("/me", Some(&alice)).await.body["sessions"], 1);
    let out = api
        .call(Method::POST, "/auth/logout", Some(&alice), None)
        .await;
    assert_eq!(out.body["revoked"], true);
    let gone = api.get("/me", Some(&alice)).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.header("www-authenticate"), Some("Bearer"));
    Ok(())
}

topology_tests!(should_serve_the_whole_game_flow);

#[tokio::test]
async fn should_set_the_session_cookie_on_login_and_clear_it_on_logout() -> anyhow::Result<()> {
    let api = crate::support::Api::standalone("demo_cookie", DemoConfig::defaults()?).await?;
    let login = api.login_from(crate::support::PEER, "carol").await;
    assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
    let token = login.body["token"].as_str().unwrap();
    let set_cookie = login.header("set-cookie").unwrap();
    let prefix = format!("session={token}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=");
    assert!(set_cookie.starts_with(&prefix), "{set_cookie}");
    // Max-Age: the session's absolute lifetime (SESSION_ABSOLUTE_TTL, 24 h by default)
    let max_age: u64 = set_cookie[prefix.len()..].parse()?;
    let absolute = DemoConfig::defaults()?.sessions.absolute_ttl.as_secs();
    assert!(
        (absolute - 10..=absolute).contains(&max_age),
        "Max-Age {max_age}"
    );
    // the cookie alone is a session
    let with_cookie = |method: Method, path: &str| {
        let mut request = crate::support::Api::request(method, path, None, None);
        request
            .headers_mut()
            .insert("cookie", format!("session={token}").parse().unwrap());
        request
    };
    let me = api.send(with_cookie(Method::GET, "/me")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"], "carol");
    // logout revokes and clears it
    let out = api.send(with_cookie(Method::POST, "/auth/logout")).await;
    assert_eq!(out.body["revoked"], true);
    assert_eq!(
        out.header("set-cookie"),
        Some("session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0")
    );
    let gone = api.send(with_cookie(Method::GET, "/me")).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        gone.header("set-cookie"),
        Some("session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0")
    );
    Ok(())
}

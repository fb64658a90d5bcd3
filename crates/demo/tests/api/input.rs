//! Bad input (400/415), missing or dead tokens (401), the damage cap.

use aeturnis_demo::DemoConfig;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn should_answer_bad_input_with_400() -> anyhow::Result<()> {
    let api = Api::standalone("demo_bad_input", DemoConfig::defaults()?).await?;
    let not_json = api
        .send(
            Request::post("/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"user\": "))?,
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(not_json.body["detail"].is_string());
    let wrong_field = api
        .post("/auth/login", None, json!({ "name": "alice" }))
        .await;
    assert_eq!(wrong_field.status, StatusCode::BAD_REQUEST);
    let bad_name = api
        .post("/auth/login", None, json!({ "user": "a{b}" }))
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert!(bad_name.body["detail"].as_str().unwrap().contains("user"));
    let no_type = api
        .send(Request::post("/auth/login").body(Body::from(r#"{"user":"alice"}"#))?)
        .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let token = api.login("carol").await;
    let empty = api
        .post("/chat", Some(&token), json!({ "message": "  " }))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let zero = api
        .post(
            "/combat/action",
            Some(&token),
            json!({ "target": "bob", "damage": 0 }),
        )
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    let negative = api
        .post(
            "/combat/action",
            Some(&token),
            json!({ "target": "bob", "damage": -5 }),
        )
        .await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);
    let myself = api
        .post(
            "/trade",
            Some(&token),
            json!({ "with": "carol", "item": "gold" }),
        )
        .await;
    assert_eq!(myself.status, StatusCode::BAD_REQUEST);
    let bad_id = api.get("/players/bad%20id/profile", None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn should_answer_401_without_a_live_session() -> anyhow::Result<()> {
    let api = Api::standalone("demo_unauthorized", DemoConfig::defaults()?).await?;
    let missing = api.get("/me", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert!(missing.body["detail"].as_str().unwrap().contains("session"));
    let bogus = api.get("/me", Some("not-a-session-token")).await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    let chat = api.post("/chat", None, json!({ "message": "hi" })).await;
    assert_eq!(chat.status, StatusCode::UNAUTHORIZED);
    let unknown = api.get("/nowhere", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn should_cap_damage_at_ten_thousand_without_scoring_a_refused_hit() -> anyhow::Result<()> {
    let api = Api::standalone("demo_damage_cap", DemoConfig::defaults()?).await?;
    let alice = api.login("alice").await;
    let strike = |damage: u32| {
        let api = &api;
        let alice = &alice;
        async move {
            api.post(
                "/combat/action",
                Some(alice),
                json!({ "target": "bob", "damage": damage }),
            )
            .await
        }
    };
    let max = strike(10_000).await;
    assert_eq!(max.status, StatusCode::OK, "{}", max.body);
    assert_eq!(max.body["score"], 10_000.0);
    let over = strike(10_001).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST, "{}", over.body);
    let error = over.body["detail"].as_str().unwrap();
    assert!(
        error.contains("damage") && error.contains("10000"),
        "{error}"
    );
    // the refused hit left the score where it was
    let board = api.get("/leaderboard", None).await;
    assert_eq!(
        board.body["leaderboard"],
        json!([{ "rank": 1, "player": "alice", "score": 10_000.0 }])
    );
    let small = strike(1).await;
    assert_eq!(small.body["score"], 10_001.0, "{}", small.body);
    Ok(())
}

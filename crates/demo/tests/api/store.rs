//! The cache patterns in front of SQLite: cache-aside hit, miss and stale
//! (stale-while-revalidate), write-through visible on the next read, tag
//! invalidation of a guild, and movement through write-behind.

use std::time::Duration;

use aeturnis_demo::{DemoConfig, Position};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand};
use aeturnis_testkit::{eventually, topology_tests, TestCtx};
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Api, Reply};

fn cache(reply: &Reply) -> &str {
    reply.header("x-cache").unwrap_or("none")
}

/// Redis's clock (`TIME`) in milliseconds: the clock the cache patterns
/// judge an entry's soft TTL by.
async fn server_ms(api: &Api) -> anyhow::Result<u64> {
    let time = CustomCommand::new_static("TIME", ClusterHash::Random, false);
    let reply: Vec<String> = api
        .state
        .redis()
        .client()
        .custom(time, Vec::<String>::new())
        .await?;
    let (secs, micros): (u64, u64) = (reply[0].parse()?, reply[1].parse()?);
    Ok(secs * 1000 + micros / 1000)
}

async fn should_serve_a_profile_as_miss_then_hit_then_stale_while_it_revalidates(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let api = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let miss = api.get("/players/carol/profile", None).await;
    assert_eq!((miss.status, cache(&miss)), (StatusCode::OK, "miss"));
    assert_eq!(miss.body["level"], 33);
    assert_eq!(miss.body["zone"], "meadow");
    let hit = api.get("/players/carol/profile", None).await;
    assert_eq!(cache(&hit), "hit");

    // Stale: an instance whose entries go stale 1 ms after they are filled
    // (the patterns refuse a soft TTL of 0), on its own database
    let config = DemoConfig::defaults()?.with_profile_soft_ttl(Duration::from_millis(1));
    let aging = Api::new(&ctx, config).await?;
    let miss = aging.get("/players/dave/profile", None).await;
    assert_eq!((cache(&miss), &miss.body["level"]), ("miss", &json!(8)));
    let filled = server_ms(&aging).await?;
    // the row changes behind the cache's back (no invalidation)
    assert!(
        aging
            .state
            .store()
            .db()
            .set_character("dave", "rogue", 9)
            .await?
    );
    // the entry's soft TTL has passed by Redis's clock (polled, without
    // reading the entry: a read just before the soft TTL may refresh early)
    eventually("5 ms on Redis's clock", Duration::from_secs(2), || async {
        let now = server_ms(&aging).await?;
        anyhow::ensure!(now >= filled + 5, "{now} < {filled} + 5");
        anyhow::Ok(())
    })
    .await?;
    // the old row is served, stale, while one refresh runs
    let stale = aging.get("/players/dave/profile", None).await;
    assert_eq!(cache(&stale), "stale");
    assert_eq!(stale.body["level"], 8, "{}", stale.body);
    // ...and the refreshed entry holds the new row (stale again 1 ms later)
    eventually("the refreshed profile", Duration::from_secs(3), || async {
        let r = aging.get("/players/dave/profile", None).await;
        match (cache(&r), r.body["level"].as_u64()) {
            ("hit" | "stale", Some(9)) => Ok(()),
            (c, l) => Err(format!("X-Cache {c}, level {l:?}")),
        }
    })
    .await?;
    let unknown = api.get("/players/zed/profile", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    Ok(())
}

async fn should_make_a_write_through_visible_on_the_next_read(ctx: TestCtx) -> anyhow::Result<()> {
    let api = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let alice = api.login("alice").await;
    assert_eq!(
        cache(&api.get("/players/alice/profile", None).await),
        "miss"
    );
    let updated = api
        .call(
            Method::PUT,
            "/me/profile",
            Some(&alice),
            Some(json!({ "class": "templar", "level": 43 })),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    // in SQLite...
    let row = api.state.store().db().profile("alice").await?.unwrap();
    assert_eq!((row.class.as_str(), row.level), ("templar", 43));
    // ...and in the cache: the next read is a hit with the new row
    let read = api.get("/players/alice/profile", None).await;
    assert_eq!(cache(&read), "hit");
    assert_eq!(read.body["class"], "templar");
    assert_eq!(read.body["level"], 43);
    // bad input is a 400 and writes nothing
    let bad = api
        .call(
            Method::PUT,
            "/me/profile",
            Some(&alice),
            Some(json!({ "class": "templar", "level": 0 })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    // a user with no character is a 404
    let zed = api.login("zed").await;
    let none = api
        .call(
            Method::PUT,
            "/me/profile",
            Some(&zed),
            Some(json!({ "class": "mage", "level": 2 })),
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    Ok(())
}

async fn should_invalidate_every_entry_tagged_with_a_guild_when_it_is_renamed(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let api = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let dave = api.login("dave").await;
    for path in [
        "/guilds/Dawnguard",
        "/players/alice/profile",
        "/players/carol/profile",
        "/players/eve/profile",
    ] {
        assert_eq!(cache(&api.get(path, None).await), "miss", "{path}");
        assert_eq!(cache(&api.get(path, None).await), "hit", "{path}");
    }
    let renamed = api
        .call(
            Method::PUT,
            "/guilds/Dawnguard",
            Some(&dave),
            Some(json!({ "name": "The Dawn Watch" })),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    // the guild and its two members' profiles
    assert_eq!(renamed.body["invalidated"], 3, "{}", renamed.body);
    let guild = api.get("/guilds/Dawnguard", None).await;
    assert_eq!(cache(&guild), "miss");
    assert_eq!(guild.body["name"], "The Dawn Watch");
    assert_eq!(guild.body["members"], json!(["alice", "carol"]));
    assert_eq!(
        cache(&api.get("/players/alice/profile", None).await),
        "miss"
    );
    assert_eq!(
        cache(&api.get("/players/carol/profile", None).await),
        "miss"
    );
    // another guild's member keeps its entry
    assert_eq!(cache(&api.get("/players/eve/profile", None).await), "hit");
    let missing = api
        .call(
            Method::PUT,
            "/guilds/Nobody",
            Some(&dave),
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    Ok(())
}

async fn should_coalesce_acknowledged_moves_into_sqlite_and_flush_them_on_shutdown(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let api = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let bob = api.login("bob").await;
    // acknowledged before the workers run: they stay in the stream
    for x in 1..=5 {
        let ack = api
            .post(
                "/move",
                Some(&bob),
                json!({ "zone": "keep", "x": x, "y": -2.5 }),
            )
            .await;
        assert_eq!(ack.status, StatusCode::OK, "{}", ack.body);
        assert!(ack.body["ack"].as_str().unwrap().contains('-'));
    }
    let db = api.state.store().db();
    assert_eq!(
        db.position("bob").await?,
        Some(Position::new("bob", "marsh", 0.0, 0.0))
    );
    api.state.start().await?;
    api.state.shutdown().await?;
    // the last acknowledged move won
    assert_eq!(
        db.position("bob").await?,
        Some(Position::new("bob", "keep", 5.0, -2.5))
    );
    let stored = api.get("/players/bob/position", None).await;
    assert_eq!(stored.body["zone"], "keep");
    let snapshot = api.state.snapshot().await;
    let wb = snapshot.write_behind.unwrap();
    assert_eq!((wb.writes, wb.lag, wb.dead_letters), (5, 0, 0));
    // a bad zone or coordinate is a 400 and is not acknowledged
    for body in [
        json!({ "zone": "moon", "x": 0, "y": 0 }),
        json!({ "zone": "keep", "x": 1e9, "y": 0 }),
    ] {
        let bad = api.post("/move", Some(&bob), body).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    }
    Ok(())
}

topology_tests!(
    should_serve_a_profile_as_miss_then_hit_then_stale_while_it_revalidates,
    should_make_a_write_through_visible_on_the_next_read,
    should_invalidate_every_entry_tagged_with_a_guild_when_it_is_renamed,
    should_coalesce_acknowledged_moves_into_sqlite_and_flush_them_on_shutdown,
);

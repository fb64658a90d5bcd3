//! The crate's Lua scripts (in `src/lua/`), each safe to run twice.

use std::sync::LazyLock;

use aeturnis_redis_core::LuaScript;

/// Read a key, or lease it when absent.
pub(crate) static LEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_lease", include_str!("lua/lease.lua")));
/// Store an entry only over the expected token.
pub(crate) static FILL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_fill", include_str!("lua/fill.lua")));
/// Remove a key only while it holds the expected token.
pub(crate) static UNLEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_unlease", include_str!("lua/unlease.lua")));
/// Write-behind: `XDEL` and `XACK` written entries in one atomic call.
pub(crate) static ACK: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_wb_ack", include_str!("lua/ack.lua")));

#[cfg(test)]
mod tests {
    //! fred re-sends a script whose connection dropped in flight: each
    //! script, run twice with the same arguments, leaves the same state and
    //! gives an answer the caller reads the same way.
    use aeturnis_redis_core::fred::bytes::Bytes;
    use aeturnis_redis_core::fred::interfaces::{KeysInterface, StreamsInterface};
    use aeturnis_redis_core::fred::types::Value;
    use aeturnis_redis_core::{Redis, RedisConfig};
    use aeturnis_testkit::RedisServer;

    use super::*;
    use crate::envelope::{entry, lease, new_token};

    #[tokio::test]
    async fn should_be_safe_to_run_each_script_twice() -> anyhow::Result<()> {
        let server = RedisServer::start_standalone()?;
        let redis = Redis::connect(RedisConfig::from_url(&server.url())?).await?;
        let key = redis.keys().key("replay").build()?;
        let token = new_token();
        let mine = Bytes::from(lease(token));
        let run_lease = || {
            let mine = mine.clone();
            redis.script_on::<Value, _>(&LEASE, &key, move |a| {
                a.push(Value::Bytes(mine.clone()));
                a.push(Value::Integer(60_000));
            })
        };
        assert_eq!(run_lease().await?, Value::Integer(1));
        // the replay finds our own lease: the caller reads it as "leased"
        assert_eq!(run_lease().await?.as_bytes(), Some(&mine[..]));

        let new = Bytes::from(entry(new_token(), 1, 2, 3, Some(b"v")));
        let run_fill = || {
            let new = new.clone();
            redis.script_on::<i64, _>(&FILL, &key, move |a| {
                a.push(Value::Bytes(Bytes::copy_from_slice(&token)));
                a.push(Value::Bytes(new.clone()));
                a.push(Value::Integer(60_000));
            })
        };
        assert_eq!(run_fill().await?, 1);
        assert_eq!(
            run_fill().await?,
            1,
            "a replay of a store that landed reports it stored"
        );
        let stored: Option<Bytes> = redis.client().get(&key).await?;
        assert_eq!(stored.as_deref(), Some(&new[..]));

        let new_token_bytes = Bytes::copy_from_slice(&new[2..10]);
        let run_unlease = || {
            let t = new_token_bytes.clone();
            redis.script_on::<i64, _>(&UNLEASE, &key, move |a| a.push(Value::Bytes(t.clone())))
        };
        assert_eq!(run_unlease().await?, 1);
        assert_eq!(
            run_unlease().await?,
            0,
            "nothing left to remove; same state"
        );
        let exists: u64 = redis.client().exists(&key).await?;
        assert_eq!(exists, 0);

        let stream = redis.keys().key("replay-stream").build()?;
        let client = redis.client();
        let mut ids = Vec::new();
        for v in ["a", "b"] {
            let id: String = client.xadd(&stream, false, None, "*", ("k", v)).await?;
            ids.push(id);
        }
        let _: Value = client.xgroup_create(&stream, "g", "0", false).await?;
        let _: Value = client
            .xreadgroup("g", "c", None, None, false, &stream, ">")
            .await?;
        let run_ack = || {
            let ids = ids.clone();
            redis.script_on::<i64, _>(&ACK, &stream, move |a| {
                a.push(Value::from("g"));
                a.extend(ids.iter().map(|id| Value::from(id.as_str())));
            })
        };
        assert_eq!(run_ack().await?, 2);
        assert_eq!(run_ack().await?, 0, "a replay acknowledges nothing more");
        let len: u64 = client.xlen(&stream).await?;
        let pending: Value = client.xpending(&stream, "g", ()).await?;
        assert_eq!(len, 0);
        assert_eq!(
            pending.into_array().first().and_then(Value::as_u64),
            Some(0)
        );
        redis.shutdown().await?;
        Ok(())
    }
}

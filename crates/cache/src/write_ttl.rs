//! The script behind every collection write: run the command and set the
//! key's TTL in the same atomic call, so a collection never exists without
//! expiry, not even between two round trips.

use std::sync::LazyLock;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{LuaScript, RedisKey};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::ttl::Ttl;

/// `KEYS[1]` the collection, `ARGV[1]` the TTL in ms, `ARGV[2]` the command
/// (always a constant from this crate), `ARGV[3..]` its arguments. The
/// arguments go in chunks of 1000 (an even number, so `ZADD` score/member
/// pairs stay together) to stay under Lua's `unpack` limit; the chunks run
/// in order inside one script, which is the same as one command. Returns
/// `{sum of integer replies, last reply}`.
pub(crate) static WRITE_WITH_TTL: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "cache_write_with_ttl",
        r"local n = #ARGV
local total = 0
local last = false
for i = 3, n, 1000 do
  local j = math.min(i + 999, n)
  last = redis.call(ARGV[2], KEYS[1], unpack(ARGV, i, j))
  if type(last) == 'number' then total = total + last end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {total, last}",
    )
});

/// Whether a command may be re-sent after a dropped connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Running it twice has the effect of running it once (`SADD`, `ZADD`).
    Safe,
    /// Running it twice changes more (`RPUSH`, `ZINCRBY`).
    Forbidden,
}

impl Cache {
    /// Runs `command key args...` and `PEXPIRE key ttl` atomically, in one
    /// round trip. Returns the sum of the integer replies and the last reply.
    pub(crate) async fn write_with_ttl(
        &self,
        key: &RedisKey,
        command: &'static str,
        args: Vec<Value>,
        ttl: Ttl,
        replay: Replay,
    ) -> Result<(i64, Value)> {
        if args.is_empty() {
            return Err(Error::InvalidArgument {
                key: key.as_str().to_owned(),
                reason: "nothing to write",
            });
        }
        let ms = self.ttl_ms(key, ttl)?;
        let mut argv = Vec::with_capacity(args.len() + 2);
        argv.push(Value::from(ms));
        argv.push(Value::from_static_str(command));
        argv.extend(args);
        let reply: Vec<Value> = match replay {
            Replay::Safe => self.redis().script(&WRITE_WITH_TTL, key, argv).await,
            Replay::Forbidden => {
                self.redis()
                    .script_no_replay(&WRITE_WITH_TTL, key, argv)
                    .await
            }
        }
        .map_err(|e| Error::from_core(key.as_str(), e))?;
        let mut reply = reply.into_iter();
        let total = reply.next().and_then(|v| v.as_i64()).unwrap_or(0);
        let last = reply.next().unwrap_or(Value::Null);
        Ok((total, last))
    }
}

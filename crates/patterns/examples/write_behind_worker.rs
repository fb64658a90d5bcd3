//! A write-behind worker process: runs the workers of `WB_NAME` against a
//! sink in Redis (a hash `sink`, `key -> "<stream id>|<value>"`) written by
//! an idempotent writer: a field changes only when the stream id is newer
//! than the one it holds (the SQL `WHERE last_stream_id < ?` of the
//! write-behind docs, as a script).
//!
//! The crash test (`tests/write_behind.rs`) starts it, kills it mid-batch
//! and starts it again. Each batch is written in two halves and the worker
//! prints `batch` between them, so a kill can land inside a batch.
//!
//! Settings: `WB_URL`, `WB_PREFIX`, `WB_NAME`, `WB_STREAMS`, `WB_CLAIM_MS`.
#![allow(clippy::print_stdout)] // the test reads the worker's progress on stdout

use std::io::Write as _;
use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::types::Value;
use aeturnis_patterns::core::LuaScript;
use aeturnis_patterns::{
    Pending, Redis, RedisConfig, RedisKey, WriteBehind, WriteBehindConfig, Writer,
};

/// Sets each field only over an older stream id.
const SINK: &str = r"
local n = 0
for i = 1, #ARGV, 4 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if cur then
    local ms, seq = string.match(cur, '^(%d+)-(%d+)|')
    ms, seq = tonumber(ms), tonumber(seq)
    local nms, nseq = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    newer = nms > ms or (nms == ms and nseq > seq)
  end
  if newer then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '-' .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
    n = n + 1
  end
end
return n
";

/// The idempotent writer: the sink hash on the same server.
struct HashSink {
    redis: Redis,
    sink: RedisKey,
    script: LuaScript,
    announce: bool,
}

impl HashSink {
    async fn put(&self, part: &[Pending<String>]) -> Result<(), aeturnis_patterns::core::Error> {
        let mut args = Vec::with_capacity(part.len() * 4);
        for p in part {
            args.push(Value::from(p.key.as_str()));
            args.push(Value::from(p.id.ms().to_string()));
            args.push(Value::from(p.id.seq().to_string()));
            args.push(Value::from(p.value.as_str()));
        }
        self.redis
            .script::<i64, _, _>(&self.script, vec![self.sink.as_str()], args)
            .await?;
        Ok(())
    }
}

impl Writer for HashSink {
    type Value = String;
    type Error = aeturnis_patterns::core::Error;

    async fn write_batch(&self, batch: &[Pending<String>]) -> Result<(), Self::Error> {
        let (first, second) = batch.split_at(batch.len() / 2);
        self.put(first).await?;
        if self.announce {
            // half written: a kill now lands inside the batch
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "batch");
            let _ = out.flush();
        }
        self.put(second).await
    }
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis =
        Redis::connect(RedisConfig::from_url(&var("WB_URL")?)?.with_key_prefix(&var("WB_PREFIX")?))
            .await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let sink = HashSink {
        sink: redis.keys().key("sink").build()?,
        script: LuaScript::new("wb_example_sink", SINK),
        redis: redis.clone(),
        announce: true,
    };
    let config = WriteBehindConfig::new(&var("WB_NAME")?)
        .with_streams(var("WB_STREAMS")?.parse()?)
        .with_batch(64)
        // the test kills workers mid-batch on purpose, possibly the same
        // claimed batch several times in a row; none of its entries is poison
        .with_max_deliveries(1000)
        .with_block(Duration::from_millis(200))
        .with_claim_idle(Duration::from_millis(var("WB_CLAIM_MS")?.parse()?));
    let wb = WriteBehind::new(&cache, config, sink)?;
    wb.start().await?;
    println!("ready");
    std::io::stdout().flush()?;
    // runs until killed, or until stdin closes: then drains and stops
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
    wb.shutdown().await;
    redis.shutdown().await?;
    Ok(())
}

//! Connects with the environment's settings (`REDIS_URL`, `REDIS_HOST`, ...) and
//! prints the health report: `REDIS_URL=redis://127.0.0.1:PORT cargo run -p
//! aeturnis-redis-core --example health`.

#![allow(clippy::print_stdout)]

use aeturnis_redis_core::{Redis, RedisConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = Redis::connect(RedisConfig::from_env()?).await?;
    let health = redis.health().await;
    println!(
        "{:?}: PING {:?}, Redis {}, role {}, {} bytes used",
        health.status,
        health.latency,
        health.server_version.as_deref().unwrap_or("?"),
        health.role.as_deref().unwrap_or("?"),
        health.used_memory.unwrap_or(0),
    );
    redis.shutdown().await?;
    Ok(())
}

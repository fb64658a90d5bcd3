//! Every session script is registered when a manager is built, so
//! `Redis::load_scripts` loads them all.

use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::SessionManager;
use aeturnis_testkit::RedisServer;

use crate::support::{eager, fast};

const SCRIPTS: [&str; 9] = [
    "session_create",
    "session_extend",
    "session_get_slide",
    "session_list",
    "session_revoke",
    "session_revoke_all",
    "session_rotate",
    "session_stats",
    "session_update",
];

/// Scripts cached on the server (`INFO memory`).
fn cached_scripts(server: &RedisServer) -> anyhow::Result<u64> {
    let info = server.cli(&["INFO", "memory"])?;
    let n = info
        .lines()
        .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
        .ok_or_else(|| anyhow::anyhow!("no number_of_cached_scripts in {info}"))?;
    Ok(n.trim().parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_register_every_script_for_load_scripts() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(RedisConfig::from_url(&server.url())?).await?;
    assert!(redis.registered_scripts().is_empty(), "a fresh handle");
    let _m = SessionManager::new(redis.clone(), eager())?;
    let mut names = redis.registered_scripts();
    names.sort_unstable();
    assert_eq!(names, SCRIPTS);
    // a second manager on the same handle registers nothing twice
    let _fast = SessionManager::new(redis.clone(), fast())?;
    assert_eq!(redis.registered_scripts().len(), SCRIPTS.len());
    server.cli(&["SCRIPT", "FLUSH"])?;
    assert_eq!(cached_scripts(&server)?, 0);
    assert_eq!(redis.load_scripts().await?, SCRIPTS.len());
    assert_eq!(
        cached_scripts(&server)?,
        u64::try_from(SCRIPTS.len())?,
        "every script is on the server"
    );
    Ok(())
}

//! Session bench: `aeturnis-session` against raw fred and against
//! tower-sessions-redis-store, on the same Redis, in one run, 50 concurrent
//! tasks on a 2-worker runtime, one shared client per side, typical
//! metadata (an IPv4 address, a 70-byte Firefox user agent, a device and a
//! short location, no bound character: about 280 bytes as the original
//! system's JSON session, the issue's "typical ~270 B").
//!
//! * get-and-slide (default config: the expiry slides on every read, last
//!   seen is recorded at most every 60 s, so nearly every read is the fast
//!   path, one `GETEX key PX 1800000`) against raw fred
//!   `GETEX key PX 1800000` of the same stored bytes: the same command, so
//!   the ratio is what the library adds (key building, the clock estimate,
//!   decoding, checks);
//! * load+touch: our per-request equivalent of tower-sessions' `load` +
//!   `save` is `get` at the **default** touch throttle (it slides the idle
//!   expiry on every read and records last seen and the LRU order at most
//!   once per touch interval), against tower-sessions-redis-store `load` +
//!   `save` of the same fields (which rewrites the record on every
//!   request). For transparency the same baseline is also set against
//!   `get` with `touch_interval = 0` (every read records last seen and
//!   the LRU order: the get-and-slide script on every read), and beside it
//!   that script's floor: raw fred sending the same Lua with the same keys
//!   and arguments (frames built once);
//! * create (5 per user, so it evicts) against raw fred `EVALSHA` of a
//!   hand-written equivalent script (SET PX, ZADD, evict the oldest over 5);
//! * Redis bytes per session (`MEMORY USAGE` of session keys plus the
//!   user indexes, divided by sessions): 1 session per user on the
//!   get-and-slide record, 5 per user on the create record.
//!
//! The sides compared in a row run interleaved, after one unrecorded
//! warm-up run each: five rounds of one run per side, alternating the
//! order, and a row reports the round whose ratio is the median
//! (`aeturnis_testkit::bench::interleaved_medians`, `median_pair`), so the
//! machine's drift weighs on both sides of a ratio. Run it with
//! `cargo xtask bench session`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::scripts::Script;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, InfoKind};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::{
    CharacterId, Session, SessionConfig, SessionId, SessionManager, SessionMetadata, UserId,
};
use aeturnis_testkit::bench::{
    append_records, interleaved_medians, interleaved_rounds, measure, median_pair, side,
    BenchRecord, Sample,
};
use aeturnis_tests::{bench_redis_url, multi_thread_runtime};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;
use tower_sessions_redis_store::RedisStore;

const LAYER: &str = "session";
const CONCURRENCY: usize = 50;
const OPS: usize = 100_000;
const USERS: usize = 1000;
const IDLE_MS: i64 = 1_800_000;

fn metadata(i: usize) -> SessionMetadata {
    SessionMetadata::new()
        .with_ip_address(
            format!("203.0.{}.{}", i % 250, (i / 250) % 250)
                .parse()
                .unwrap_or(std::net::IpAddr::from([203, 0, 113, 7])),
        )
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0")
        .with_device("desktop")
        .with_location("Berlin, DE")
}

fn user(i: usize) -> anyhow::Result<UserId> {
    Ok(UserId::new(format!("player-{i:06}"))?)
}

/// The original system's session as JSON (`JSON.stringify`, which leaves
/// out absent fields), to size "typical metadata".
fn json_size(s: &Session) -> usize {
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    };
    let mut json = serde_json::json!({
        "sessionId": s.id.to_string(),
        "userId": s.user.as_str(),
        "characterId": s.character.as_ref().map(CharacterId::as_str),
        "createdAt": ms(s.created_at),
        "lastActivity": ms(s.last_seen),
        "ipAddress": s.metadata.ip_address.map(|i| i.to_string()),
        "userAgent": s.metadata.user_agent,
        "deviceInfo": s.metadata.device,
        "location": s.metadata.location,
    });
    if let Some(fields) = json.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    json.to_string().len()
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::from_url(url)?.with_key_prefix(prefix)).await?)
}

fn report(records: &mut Vec<BenchRecord>, record: BenchRecord) {
    println!(
        "{LAYER} {:<34} c={:<3} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | {:<40} {:>9.0} ops/s | ratio {:.2}{}",
        record.case,
        record.concurrency,
        record.ops_per_sec,
        record.p50_us,
        record.p99_us,
        record.baseline,
        record.baseline_ops_per_sec,
        record.ratio,
        record
            .redis_bytes_per_item
            .map(|b| format!(" | {b:.0} B/session"))
            .unwrap_or_default()
    );
    records.push(record);
}

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let runtime = multi_thread_runtime()?;
    if let Ok(what) = std::env::var(PROFILE_ENV) {
        return runtime.block_on(profile(&url, &what));
    }
    let mut records = Vec::new();
    runtime.block_on(async {
        get_and_slide(&url, &mut records).await?;
        load_and_touch(&url, &mut records).await?;
        create(&url, &mut records).await?;
        anyhow::Ok(())
    })?;
    append_records(&records)
}

/// One run of session reads (get-and-slide) over `ids`, round robin.
fn reads(
    m: &SessionManager,
    ids: &Arc<Vec<SessionId>>,
) -> impl std::future::Future<Output = anyhow::Result<Sample>> + Send + 'static {
    let (m, ids) = (m.clone(), Arc::clone(ids));
    measure(CONCURRENCY, OPS, move |i| {
        let (m, ids) = (m.clone(), Arc::clone(&ids));
        async move {
            let s = m.get(&ids[i % ids.len()]).await?;
            anyhow::ensure!(s.is_some(), "missing session");
            Ok(())
        }
    })
}

/// Sessions for `USERS` users (one each).
async fn populate(m: &SessionManager) -> anyhow::Result<Vec<SessionId>> {
    let mut ids = Vec::with_capacity(USERS);
    for i in 0..USERS {
        ids.push(m.create(&user(i)?, metadata(i)).await?.id);
    }
    Ok(ids)
}

async fn get_and_slide(url: &str, records: &mut Vec<BenchRecord>) -> anyhow::Result<()> {
    let redis = connect(url, "bench-session-get:").await?;
    let m = SessionManager::new(redis.clone(), SessionConfig::default())?;
    let ids = Arc::new(populate(&m).await?);
    let typical = m
        .get(&ids[0])
        .await?
        .map(|s| json_size(&s))
        .unwrap_or_default();
    println!("{LAYER} typical session: {typical} B as the original's JSON");
    // the raw side reads the same stored bytes from plain keys
    let client = redis.client().clone();
    let mut raw_keys = Vec::with_capacity(USERS);
    for (i, id) in ids.iter().enumerate() {
        let key = format!("bench-session-get:s:{{{}}}:{}", id.tag(), &id.as_str()[5..]);
        let bytes: Bytes = client.get(&key).await?;
        let raw = format!("bench-session-raw:{i}");
        let () = client
            .set(&raw, bytes, Some(Expiration::PX(IDLE_MS)), None, false)
            .await?;
        raw_keys.push(raw);
    }
    let raw_keys = Arc::new(raw_keys);
    let getex = CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false);
    let (ours, baseline) = interleaved_medians(
        || reads(&m, &ids),
        || {
            let (client, keys, getex) = (client.clone(), Arc::clone(&raw_keys), getex.clone());
            measure(CONCURRENCY, OPS, move |i| {
                let (client, keys, getex) = (client.clone(), Arc::clone(&keys), getex.clone());
                async move {
                    let key = keys[i % keys.len()].as_str();
                    let v: Bytes = client.custom(getex, vec![key, "PX", "1800000"]).await?;
                    anyhow::ensure!(!v.is_empty(), "missing raw session");
                    Ok(())
                }
            })
        },
    )
    .await?;
    // memory: one session per user, index included
    let users: Vec<UserId> = (0..USERS).map(user).collect::<anyhow::Result<_>>()?;
    let one = bytes_per_session(&m, &users).await?;
    report(
        records,
        BenchRecord::new(
            LAYER,
            "get-and-slide (touch 60 s)",
            CONCURRENCY,
            "multi_thread(2)",
            ours,
            "fred GETEX PX (same bytes)",
            baseline.ops_per_sec,
        )
        .with_baseline_latency(baseline)
        .with_redis_bytes_per_item(one),
    );
    let _ = redis.shutdown().await;
    Ok(())
}

async fn load_and_touch(url: &str, records: &mut Vec<BenchRecord>) -> anyhow::Result<()> {
    let redis = connect(url, "bench-session-touch:").await?;
    // the default touch throttle: the per-request equivalent of load+save
    let m = SessionManager::new(redis.clone(), SessionConfig::default())?;
    let ids = Arc::new(populate(&m).await?);
    // every read records a touch (the script on every read), for transparency
    let eager_redis = connect(url, "bench-session-touch0:").await?;
    let eager = SessionManager::new(
        eager_redis.clone(),
        SessionConfig::default().with_touch_interval(Duration::ZERO),
    )?;
    let eager_ids = Arc::new(populate(&eager).await?);
    // tower-sessions: the same fields in a record, stored by its Redis store
    let tower_client = Client::new(Config::from_url(url)?, None, None, None);
    tower_client.init().await?;
    let store = RedisStore::new(tower_client.clone());
    let mut tower_ids = Vec::with_capacity(USERS);
    for (i, id) in ids.iter().enumerate() {
        let s = m.get(id).await?.ok_or_else(|| anyhow::anyhow!("missing"))?;
        let mut record = tower_record(&s.user, i);
        store
            .create(&mut record)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tower_ids.push(record.id);
    }
    let tower_ids = Arc::new(tower_ids);
    // the floor of a touch on every read: raw fred sending the
    // get-and-slide script with the eager manager's own keys and arguments
    let eager_frames = Arc::new(slide_frames(&eager, &eager_ids).await?);
    let eager_client = eager_redis.client().clone();
    let rounds = interleaved_rounds(vec![
        side(move || reads(&m, &ids)),
        side(move || reads(&eager, &eager_ids)),
        side(move || {
            let (store, ids) = (store.clone(), Arc::clone(&tower_ids));
            measure(CONCURRENCY, OPS, move |i| {
                let (store, ids) = (store.clone(), Arc::clone(&ids));
                async move { tower_load_save(&store, &ids, i).await }
            })
        }),
        side(move || {
            let (client, frames) = (eager_client.clone(), Arc::clone(&eager_frames));
            measure(CONCURRENCY, OPS, move |i| {
                let (client, frames) = (client.clone(), Arc::clone(&frames));
                async move { raw_slide(&client, &frames[i % frames.len()]).await }
            })
        }),
    ])
    .await?;
    let (ours, baseline) = median_pair(&rounds, 0, 2)?;
    let (ours_eager, eager_baseline) = median_pair(&rounds, 1, 2)?;
    let (floor, floor_baseline) = median_pair(&rounds, 3, 2)?;
    report(
        records,
        BenchRecord::new(
            LAYER,
            "load+touch (touch 60 s, default)",
            CONCURRENCY,
            "multi_thread(2)",
            ours,
            "tower-sessions-redis-store load+save",
            baseline.ops_per_sec,
        )
        .with_baseline_latency(baseline),
    );
    report(
        records,
        BenchRecord::new(
            LAYER,
            "load+touch (touch every read)",
            CONCURRENCY,
            "multi_thread(2)",
            ours_eager,
            "tower-sessions-redis-store load+save",
            eager_baseline.ops_per_sec,
        )
        .with_baseline_latency(eager_baseline),
    );
    report(
        records,
        BenchRecord::new(
            LAYER,
            "floor of a touch on every read: raw fred EVALSHA of the same get-and-slide Lua",
            CONCURRENCY,
            "multi_thread(2)",
            floor,
            "tower-sessions-redis-store load+save",
            floor_baseline.ops_per_sec,
        )
        .with_baseline_latency(floor_baseline),
    );
    tower_client.quit().await?;
    let _ = redis.shutdown().await;
    let _ = eager_redis.shutdown().await;
    Ok(())
}

/// The same fields as our session (its metadata as `metadata(i)` gives
/// it), in a tower-sessions record.
fn tower_record(user: &UserId, i: usize) -> Record {
    let m = metadata(i);
    let mut data = HashMap::new();
    data.insert("user".to_owned(), serde_json::json!(user.as_str()));
    data.insert(
        "ip".to_owned(),
        serde_json::json!(m.ip_address.map(|a| a.to_string())),
    );
    data.insert("user_agent".to_owned(), serde_json::json!(m.user_agent));
    data.insert("device".to_owned(), serde_json::json!(m.device));
    data.insert("location".to_owned(), serde_json::json!(m.location));
    data.insert("created".to_owned(), serde_json::json!(i));
    data.insert("last_seen".to_owned(), serde_json::json!(i));
    Record {
        id: Id::default(),
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
    }
}

/// tower-sessions' per-request load + save (a new expiry, last seen).
async fn tower_load_save(store: &RedisStore<Client>, ids: &[Id], i: usize) -> anyhow::Result<()> {
    let id = &ids[i % ids.len()];
    let mut record = store
        .load(id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("missing tower session"))?;
    record.expiry_date = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
    record
        .data
        .insert("last_seen".to_owned(), serde_json::json!(i));
    store
        .save(&record)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A hand-written create: store the bytes with the idle TTL, index by time,
/// evict the oldest over the limit.
const RAW_CREATE: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  redis.call('DEL', ARGV[6] .. oldest[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#;

async fn create(url: &str, records: &mut Vec<BenchRecord>) -> anyhow::Result<()> {
    let redis = connect(url, "bench-session-create:").await?;
    let m = SessionManager::new(
        redis.clone(),
        SessionConfig::default().with_max_per_user(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)),
    )?;
    let users: Arc<Vec<UserId>> = Arc::new((0..USERS).map(user).collect::<anyhow::Result<_>>()?);
    // the same stored bytes for the raw side
    let sample_session = m.create(&users[0], metadata(0)).await?;
    let sample_key = format!(
        "bench-session-create:s:{{{}}}:{}",
        sample_session.id.tag(),
        &sample_session.id.as_str()[5..]
    );
    let client = redis.client().clone();
    let bytes: Bytes = client.get(&sample_key).await?;
    m.revoke_all(&users[0]).await?;
    let script = Script::from_lua(RAW_CREATE);
    script.load(&client).await?;
    // raw fred sending our own create script with the same arguments
    let same = Arc::new(SameLua::new(&m, &users).await?);
    let rounds = interleaved_rounds(vec![
        side(|| {
            let (m, users) = (m.clone(), Arc::clone(&users));
            measure(CONCURRENCY, OPS, move |i| {
                let (m, users) = (m.clone(), Arc::clone(&users));
                async move {
                    m.create(&users[i % users.len()], metadata(i)).await?;
                    Ok(())
                }
            })
        }),
        side(|| {
            let (client, script, bytes) = (client.clone(), script.clone(), bytes.clone());
            measure(CONCURRENCY, OPS, move |i| {
                let (client, script, bytes) = (client.clone(), script.clone(), bytes.clone());
                raw_create(client, script, bytes, i)
            })
        }),
        side(|| {
            let same = Arc::clone(&same);
            measure(CONCURRENCY, OPS, move |i| {
                let same = Arc::clone(&same);
                async move { same.create(i).await }
            })
        }),
    ])
    .await?;
    let (ours, baseline) = median_pair(&rounds, 0, 1)?;
    let (ours_same, same_lua) = median_pair(&rounds, 0, 2)?;
    // memory: now every user has 5 sessions
    let five = bytes_per_session(&m, &users).await?;
    report(
        records,
        BenchRecord::new(
            LAYER,
            "create (evicting, 5 per user)",
            CONCURRENCY,
            "multi_thread(2)",
            ours,
            "fred EVALSHA equivalent script",
            baseline.ops_per_sec,
        )
        .with_baseline_latency(baseline)
        .with_redis_bytes_per_item(five),
    );
    // what the library adds to its own script (client side)
    report(
        records,
        BenchRecord::new(
            LAYER,
            "create (evicting, 5 per user)",
            CONCURRENCY,
            "multi_thread(2)",
            ours_same,
            "fred EVALSHA same Lua (custom, pipelined)",
            same_lua.ops_per_sec,
        )
        .with_baseline_latency(same_lua),
    );
    let _ = redis.shutdown().await;
    Ok(())
}

/// Raw fred sending the manager's own create script (`EVALSHA` through
/// `Client::custom`, pipelined, as the core sends it) with the arguments
/// the manager sends, under its own prefix: fresh random ids, each user's
/// stored fields, 5 per user. The gap to the library is what the library
/// adds on the client; the gap between this and the hand-written script is
/// what the script's guarantees cost.
struct SameLua {
    client: Client,
    sha: aeturnis_redis_core::fred::bytes_utils::Str,
    /// Per user: the fields as stored, the index key and the session head.
    users: Vec<(UserId, Bytes, String, String)>,
    /// idle, absolute, max, touch interval, index TTL (ms).
    args: [i64; 5],
}

impl SameLua {
    const PREFIX: &'static str = "bench-session-createlua:";

    async fn new(m: &SessionManager, users: &[UserId]) -> anyhow::Result<SameLua> {
        let (script, args) = m.create_script_for_tests();
        let client = m.redis().client().clone();
        script.load(&client).await?;
        // each user's fields, as the manager stores them (after the
        // 25-byte header)
        let lua = connect_same(m).await?;
        let mut per_user = Vec::with_capacity(users.len());
        for (i, u) in users.iter().enumerate() {
            let s = lua.create(u, metadata(i)).await?;
            let key = format!(
                "{}s:{{{}}}:{}",
                Self::PREFIX,
                s.id.tag(),
                &s.id.as_str()[5..]
            );
            let value: Bytes = client.get(&key).await?;
            let tag = u.slot_tag();
            per_user.push((
                u.clone(),
                value.slice(25..),
                format!("{}su:{{{tag}}}:{}", Self::PREFIX, u.as_str()),
                format!("{}s:{{{tag}}}:", Self::PREFIX),
            ));
        }
        let args = args.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        Ok(SameLua {
            client,
            sha: script.sha1().into(),
            users: per_user,
            args,
        })
    }

    async fn create(&self, i: usize) -> anyhow::Result<()> {
        let (user, fields, index, head) = &self.users[i % self.users.len()];
        let id = SessionId::generate(user);
        let member = &id.as_str()[5..];
        let key = format!("{head}{member}");
        let [idle, absolute, max, touch, keep] = self.args;
        let frame: Vec<Value> = vec![
            Value::String(self.sha.clone()),
            Value::Integer(2),
            key.as_str().into(),
            index.as_str().into(),
            member.into(),
            Value::Bytes(fields.clone()),
            Value::Integer(idle),
            Value::Integer(absolute),
            Value::Integer(max),
            Value::Integer(touch),
            head.as_str().into(),
            Value::Integer(keep),
        ];
        let slot = aeturnis_redis_core::hash_slot(&key);
        let reply: Vec<Value> = self
            .client
            .custom(
                CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false),
                frame,
            )
            .await?;
        anyhow::ensure!(reply.get(3) == Some(&Value::Integer(1)), "not created");
        Ok(())
    }
}

/// The `EVALSHA` frame (and its slot) of the get-and-slide script for
/// each of `ids`, exactly as `m` sends it; the script is loaded.
async fn slide_frames(
    m: &SessionManager,
    ids: &[SessionId],
) -> anyhow::Result<Vec<(u16, Vec<Value>)>> {
    let mut frames = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let (script, key, args) = m.get_slide_script_for_tests(id)?;
        if i == 0 {
            script.load(m.redis().client()).await?;
        }
        let slot = aeturnis_redis_core::hash_slot(key.as_str());
        let mut frame: Vec<Value> = Vec::with_capacity(3 + args.len());
        frame.push(Value::String(script.sha1().into()));
        frame.push(Value::Integer(1));
        frame.push(key.as_str().into());
        frame.extend(args);
        frames.push((slot, frame));
    }
    Ok(frames)
}

/// One get-and-slide by raw fred: the session must be there.
async fn raw_slide(client: &Client, (slot, frame): &(u16, Vec<Value>)) -> anyhow::Result<()> {
    let reply: Value = client
        .custom(
            CustomCommand::new_static("EVALSHA", ClusterHash::Custom(*slot), false),
            frame.clone(),
        )
        .await?;
    anyhow::ensure!(!reply.is_null(), "no session");
    Ok(())
}

/// A manager like `m` under the same-Lua side's prefix.
async fn connect_same(m: &SessionManager) -> anyhow::Result<SessionManager> {
    let config = m.redis().config().clone().with_key_prefix(SameLua::PREFIX);
    let redis = Redis::connect(config).await?;
    Ok(SessionManager::new(redis, m.config().clone())?)
}

/// One create by the hand-written script.
async fn raw_create(client: Client, script: Script, bytes: Bytes, i: usize) -> anyhow::Result<()> {
    let u = i % USERS;
    let tag = format!("{:04x}", u % 65536);
    let member = format!("{i:022}");
    let keys = vec![
        format!("bench-session-rawc:s:{{{tag}}}:{member}"),
        format!("bench-session-rawc:su:{{{tag}}}:player-{u:06}"),
    ];
    let args: Vec<Value> = vec![
        Value::Bytes(bytes),
        Value::Integer(IDLE_MS),
        Value::Integer(i as i64),
        member.into(),
        Value::Integer(5),
        format!("bench-session-rawc:s:{{{tag}}}:").into(),
    ];
    let _: i64 = script.evalsha(&client, keys, args).await?;
    Ok(())
}

/// `AETURNIS_BENCH_PROFILE=<case>:<n>` runs `n` operations of one side
/// alone (c=50, as the rows) and prints its rate, the CPU time per
/// operation of this process and of the Redis server (`INFO cpu`), and the
/// server's `INFO commandstats` for them (reset first): where an
/// operation's time goes on each side. Under `valgrind --tool=callgrind`
/// with two values of `n`, the difference gives the client's instructions
/// per operation. Cases: `create`, `create-raw`, `touch` (every read
/// touches), `touch-tower` (tower-sessions load+save).
const PROFILE_ENV: &str = "AETURNIS_BENCH_PROFILE";

async fn profile(url: &str, what: &str) -> anyhow::Result<()> {
    let (case, n) = what
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("{PROFILE_ENV}={what}: expected <case>:<n>"))?;
    let n: usize = n.parse()?;
    let redis = connect(url, "bench-session-prof:").await?;
    let client = redis.client().clone();
    let five =
        SessionConfig::default().with_max_per_user(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
    let users: Arc<Vec<UserId>> = Arc::new((0..USERS).map(user).collect::<anyhow::Result<_>>()?);
    let sample = match case {
        "create" => {
            let m = SessionManager::new(redis.clone(), five)?;
            // every user at the limit first
            for i in 0..USERS * 5 {
                m.create(&users[i % USERS], metadata(i)).await?;
            }
            profiled(case, &client, n, move |i| {
                let (m, users) = (m.clone(), Arc::clone(&users));
                async move {
                    m.create(&users[i % USERS], metadata(i)).await?;
                    Ok(())
                }
            })
            .await?
        }
        "create-raw" => {
            let m = SessionManager::new(redis.clone(), five)?;
            let s = m.create(&users[0], metadata(0)).await?;
            let key = format!(
                "bench-session-prof:s:{{{}}}:{}",
                s.id.tag(),
                &s.id.as_str()[5..]
            );
            let bytes: Bytes = client.get(&key).await?;
            let script = Script::from_lua(RAW_CREATE);
            script.load(&client).await?;
            for i in 0..USERS * 5 {
                raw_create(client.clone(), script.clone(), bytes.clone(), i).await?;
            }
            let c = client.clone();
            profiled(case, &client, n, move |i| {
                raw_create(c.clone(), script.clone(), bytes.clone(), USERS * 5 + i)
            })
            .await?
        }
        "touch" => {
            let m = SessionManager::new(
                redis.clone(),
                SessionConfig::default().with_touch_interval(Duration::ZERO),
            )?;
            let ids = Arc::new(populate(&m).await?);
            profiled(case, &client, n, move |i| {
                let (m, ids) = (m.clone(), Arc::clone(&ids));
                async move {
                    anyhow::ensure!(m.get(&ids[i % ids.len()]).await?.is_some(), "missing");
                    Ok(())
                }
            })
            .await?
        }
        "touch-tower" => {
            let store = RedisStore::new(client.clone());
            let mut ids = Vec::with_capacity(USERS);
            for (i, u) in users.iter().enumerate() {
                let mut record = tower_record(u, i);
                store
                    .create(&mut record)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                ids.push(record.id);
            }
            let ids = Arc::new(ids);
            profiled(case, &client, n, move |i| {
                let (store, ids) = (store.clone(), Arc::clone(&ids));
                async move { tower_load_save(&store, &ids, i).await }
            })
            .await?
        }
        other => anyhow::bail!("{PROFILE_ENV}: unknown case {other:?}"),
    };
    println!(
        "{LAYER} profile {case}: {:.0} ops/s, p50 {:.0} µs",
        sample.ops_per_sec, sample.p50_us
    );
    let _ = redis.shutdown().await;
    Ok(())
}

/// One measured run of `op` with the CPU both sides spent on it.
async fn profiled<F, Fut>(case: &str, client: &Client, n: usize, op: F) -> anyhow::Result<Sample>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let () = client.config_resetstat().await?;
    let (redis_before, ours_before) = (redis_cpu(client).await?, own_cpu()?);
    let sample = measure(CONCURRENCY, n, op).await?;
    let (redis_after, ours_after) = (redis_cpu(client).await?, own_cpu()?);
    // `measure` adds a warm-up of n / 10 calls (at least c)
    let ops = (n + (n / 10).max(CONCURRENCY)) as f64;
    println!(
        "{LAYER} profile {case}: CPU per op: client {:.1} µs, Redis {:.1} µs",
        (ours_after - ours_before) * 1e6 / ops,
        (redis_after - redis_before) * 1e6 / ops
    );
    let stats: String = client.info(Some(InfoKind::CommandStats)).await?;
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let line = line.split(",rejected").next().unwrap_or(line);
        println!("{LAYER} profile {case}: {line}");
    }
    Ok(sample)
}

/// The Redis server's CPU seconds (user + system) so far.
async fn redis_cpu(client: &Client) -> anyhow::Result<f64> {
    let text: String = client.info(Some(InfoKind::Cpu)).await?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "used_cpu_sys" | "used_cpu_user")
                .then(|| v.trim().parse::<f64>().ok())
                .flatten()
        })
        .sum())
}

/// This process's CPU seconds (user + system) so far, from `/proc`.
fn own_cpu() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // the fields after the command name's closing parenthesis
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'
    Ok((ticks(11) + ticks(12)) / 100.0)
}

async fn bytes_per_session(m: &SessionManager, users: &[UserId]) -> anyhow::Result<f64> {
    let client = m.redis().client();
    let prefix = m.redis().keys().prefix().to_owned();
    let (mut bytes, mut sessions) = (0i64, 0usize);
    for u in users {
        let listed = m.list(u).await?;
        for s in &listed {
            let key = format!("{prefix}s:{{{}}}:{}", s.id.tag(), &s.id.as_str()[5..]);
            let b: Option<i64> = client.memory_usage(&key, Some(0)).await?;
            bytes += b.unwrap_or(0);
        }
        let index = format!("{prefix}su:{{{}}}:{}", u.slot_tag(), u.as_str());
        let b: Option<i64> = client.memory_usage(&index, Some(0)).await?;
        bytes += b.unwrap_or(0);
        sessions += listed.len();
    }
    anyhow::ensure!(sessions > 0, "no sessions to measure");
    Ok(bytes as f64 / sessions as f64)
}

//! The managed connection: connect, health, shutdown, replay control.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool, SubscriberClient, WithOptions};
use fred::interfaces::{ClientLike, EventInterface};
use fred::prelude::Builder;
use fred::types::config::Options;
use fred::types::{ClusterHash, CustomCommand, FromValue, MultipleKeys, MultipleValues, Value};
use tokio::task::JoinHandle;

use crate::codec::Codec;
use crate::config::{RedisConfig, Topology};
use crate::error::{Error, Result};
use crate::failover::Watcher;
use crate::health::{ConnectionState, Health, HealthStatus};
use crate::keys::{KeySpace, RedisKey};
use crate::script::LuaScript;
use crate::watchdog;

enum Backend {
    Single(Client),
    Pool(Pool),
}

struct Inner {
    backend: Backend,
    config: RedisConfig,
    keys: KeySpace,
    codec: Codec,
    no_replay: Options,
    shut_down: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<fred::prelude::FredResult<()>>>>,
    /// The connection task fred's `init` starts; it ends when the client
    /// stops for good (reconnect attempts spent, or shutdown).
    connection: Mutex<Option<JoinHandle<fred::prelude::FredResult<()>>>>,
    watcher: Option<Watcher>,
    scripts: Mutex<Vec<LuaScript>>,
}

/// A connected Redis handle: one auto-pipelined fred client (or a pool),
/// the key space and the codec. Cheap to clone; every clone shares the
/// connection.
///
/// # Replay
///
/// fred re-sends a command whose connection dropped while it was in flight,
/// up to [`RedisConfig::max_command_attempts`] times (default `3`). That is
/// right for idempotent commands (`GET`, `SET`, `DEL`, `PEXPIRE`, scripts
/// that carry a client-chosen id). A non-idempotent command (`INCRBY`, a
/// script that appends or evicts) must go through [`Redis::no_replay`] or
/// [`Redis::script_no_replay`]: such a call fails with a connection error
/// instead of possibly running twice, and the caller decides what to do.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("topology", &self.inner.config.topology)
            .field("prefix", &self.inner.keys.prefix())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects, bounded by [`RedisConfig::connect_timeout`].
    ///
    /// ```no_run
    /// # async fn demo() -> aeturnis_redis_core::Result<()> {
    /// use aeturnis_redis_core::{Redis, RedisConfig};
    /// let redis = Redis::connect(RedisConfig::from_env()?).await?;
    /// println!("{:?}", redis.health().await);
    /// redis.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: RedisConfig) -> Result<Redis> {
        config.validate()?;
        let keys = KeySpace::new(&config.key_prefix)?;
        let builder = builder_for(&config)?;
        let backend = if config.pool_size.get() == 1 {
            Backend::Single(builder.build()?)
        } else {
            Backend::Pool(builder.build_pool(config.pool_size.get())?)
        };
        let mut tasks = match &backend {
            Backend::Single(c) => log_events(c),
            Backend::Pool(p) => p.clients().iter().flat_map(log_events).collect(),
        };
        let clients = match &backend {
            Backend::Single(c) => vec![c.clone()],
            Backend::Pool(p) => p.clients().to_vec(),
        };
        tasks.extend(watchdog::start(&clients, config.unresponsive_timeout));
        let watcher = match Watcher::start(&config, clients)? {
            Some((watcher, watching)) => {
                tasks.extend(watching);
                Some(watcher)
            }
            None => None,
        };
        let inner = Inner {
            backend,
            codec: Codec::new(config.codec),
            keys,
            no_replay: Options {
                max_attempts: Some(1),
                ..Options::default()
            },
            shut_down: AtomicBool::new(false),
            tasks: Mutex::new(tasks),
            connection: Mutex::new(None),
            watcher,
            scripts: Mutex::new(Vec::new()),
            config,
        };
        let redis = Redis {
            inner: Arc::new(inner),
        };
        let timeout = redis.inner.config.connect_timeout;
        let init = async {
            let handle = match &redis.inner.backend {
                Backend::Single(c) => c.init().await,
                Backend::Pool(p) => p.init().await,
            }?;
            if let Ok(mut slot) = redis.inner.connection.lock() {
                *slot = Some(handle);
            }
            Ok::<_, fred::error::Error>(())
        };
        let outcome = match tokio::time::timeout(timeout, init).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Redis(e)),
            Err(_) => Err(Error::Timeout {
                operation: "connect",
                after: timeout,
            }),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(topology = %describe(&redis.inner.config.topology), "connected to Redis");
                Ok(redis)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not connect to Redis");
                let _ = redis.shutdown().await;
                Err(e)
            }
        }
    }

    /// The fred client to send commands with (the next one, for a pool).
    #[must_use]
    pub fn client(&self) -> &Client {
        match &self.inner.backend {
            Backend::Single(c) => c,
            Backend::Pool(p) => p.next(),
        }
    }

    /// The pool, when [`RedisConfig::pool_size`] is above 1.
    #[must_use]
    pub fn pool(&self) -> Option<&Pool> {
        match &self.inner.backend {
            Backend::Single(_) => None,
            Backend::Pool(p) => Some(p),
        }
    }

    /// The client with replay disabled (`max_attempts = 1`): a command whose
    /// connection drops while it is in flight fails instead of being re-sent.
    /// Use it for every command that must not run twice.
    #[must_use]
    pub fn no_replay(&self) -> WithOptions<Client> {
        self.client().with_options(&self.inner.no_replay)
    }

    /// The key space (prefix and key builders).
    #[must_use]
    pub fn keys(&self) -> &KeySpace {
        &self.inner.keys
    }

    /// The value codec.
    #[must_use]
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The configuration this handle was built from.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether the servers form a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.config.topology, Topology::Cluster { .. })
    }

    /// Whether the client has stopped for good: its reconnect attempts
    /// ([`ReconnectConfig::max_attempts`](crate::ReconnectConfig::max_attempts))
    /// are spent, or it was shut down. A stopped client does not come back
    /// when Redis does; every call through it fails. With the default
    /// `max_attempts = 0` it never stops on its own.
    #[must_use]
    pub fn has_stopped(&self) -> bool {
        self.inner
            .connection
            .lock()
            .map(|slot| slot.as_ref().is_some_and(JoinHandle::is_finished))
            .unwrap_or(false)
    }

    /// The connection state (the first client's, for a pool).
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match &self.inner.backend {
            Backend::Single(c) => c.state().into(),
            Backend::Pool(p) => p
                .clients()
                .first()
                .map_or(ConnectionState::Disconnected, |c| c.state().into()),
        }
    }

    /// [`Error::Shutdown`] once [`shutdown`](Self::shutdown) has run, so a
    /// call made of native commands fails at once, as a script call does
    /// (a shut-down fred client would otherwise wait out the command
    /// timeout).
    ///
    /// # Errors
    /// [`Error::Shutdown`].
    pub fn ensure_open(&self) -> Result<()> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// [`ensure_open`](Self::ensure_open), and with
    /// [`RedisConfig::fail_fast_commands`] on, [`Error::Disconnected`] at
    /// once while the client knows its connection is down (fred reports a
    /// state other than connected). Every script call through this handle
    /// makes this check; call it before raw commands that should fail fast
    /// too.
    ///
    /// # Errors
    /// [`Error::Shutdown`] or [`Error::Disconnected`].
    pub fn ensure_connected(&self) -> Result<()> {
        self.check_open()
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        if self.inner.config.fail_fast_commands {
            let state = self.state();
            if state != ConnectionState::Connected {
                return Err(Error::Disconnected { state });
            }
        }
        Ok(())
    }

    /// Runs a script (`EVALSHA`, reload on `NOSCRIPT`). fred may replay it
    /// after a dropped connection, so the script must be safe to run twice.
    pub async fn script<R, K, V>(&self, script: &LuaScript, keys: K, args: V) -> Result<R>
    where
        R: FromValue,
        K: Into<MultipleKeys> + Send,
        V: TryInto<MultipleValues> + Send,
        V::Error: Into<fred::error::Error> + Send,
    {
        self.check_open()?;
        script.exec(self.client(), keys, args).await
    }

    /// Runs a script with replay disabled: after a dropped connection the
    /// call fails with a connection error rather than running twice.
    pub async fn script_no_replay<R, K, V>(&self, script: &LuaScript, keys: K, args: V) -> Result<R>
    where
        R: FromValue,
        K: Into<MultipleKeys> + Send,
        V: TryInto<MultipleValues> + Send,
        V::Error: Into<fred::error::Error> + Send,
    {
        self.check_open()?;
        script
            .exec_with(&self.no_replay(), self.client(), keys, args)
            .await
    }

    /// Runs a script on one key, with the arguments `args` pushes onto the
    /// command (see [`LuaScript::exec_on`]): the hot-path form of
    /// [`script`](Self::script), which builds the command once and runs
    /// `args` again only on `NOSCRIPT`. fred may replay it after a dropped
    /// connection, so the script must be safe to run twice.
    ///
    /// ```no_run
    /// # async fn demo(redis: aeturnis_redis_core::Redis) -> aeturnis_redis_core::Result<()> {
    /// use aeturnis_redis_core::fred::types::Value;
    /// use aeturnis_redis_core::LuaScript;
    /// let incr = LuaScript::new("incr_by", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    /// let key = redis.keys().key("hits").id("home").build()?;
    /// let n: i64 = redis
    ///     .script_on(&incr, &key, |args| args.push(Value::Integer(5)))
    ///     .await?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub async fn script_on<R, F>(&self, script: &LuaScript, key: &RedisKey, args: F) -> Result<R>
    where
        R: FromValue,
        F: Fn(&mut Vec<Value>) + Send + Sync,
    {
        self.check_open()?;
        let client = self.client();
        script.exec_on(client, client, key.as_str(), args).await
    }

    /// [`script_on`](Self::script_on) with replay disabled, as
    /// [`script_no_replay`](Self::script_no_replay).
    pub async fn script_on_no_replay<R, F>(
        &self,
        script: &LuaScript,
        key: &RedisKey,
        args: F,
    ) -> Result<R>
    where
        R: FromValue,
        F: Fn(&mut Vec<Value>) + Send + Sync,
    {
        self.check_open()?;
        script
            .exec_on(&self.no_replay(), self.client(), key.as_str(), args)
            .await
    }

    /// Remembers `script` so [`load_scripts`](Self::load_scripts) preloads it.
    pub fn register_script(&self, script: &LuaScript) {
        self.register_scripts([script]);
    }

    /// Remembers every script of a crate so [`load_scripts`](Self::load_scripts)
    /// preloads them. Every Aeturnis crate calls this once, with all of its
    /// scripts, when its main type is built on a handle (`Cache::new`,
    /// `SessionManager::new`, `LockManager::new`, `RateLimiter::new`).
    pub fn register_scripts<'a>(&self, scripts: impl IntoIterator<Item = &'a LuaScript>) {
        if let Ok(mut registered) = self.inner.scripts.lock() {
            for script in scripts {
                if !registered.iter().any(|s| s.sha1() == script.sha1()) {
                    registered.push(script.clone());
                }
            }
        }
    }

    /// The names of the registered scripts, in registration order.
    #[must_use]
    pub fn registered_scripts(&self) -> Vec<&'static str> {
        self.inner
            .scripts
            .lock()
            .map(|s| s.iter().map(LuaScript::name).collect())
            .unwrap_or_default()
    }

    /// Loads every registered script on every primary (optional: scripts
    /// also load themselves on first `NOSCRIPT`).
    pub async fn load_scripts(&self) -> Result<usize> {
        self.ensure_open()?;
        let scripts = self
            .inner
            .scripts
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        for script in &scripts {
            script.load(self.client()).await?;
        }
        Ok(scripts.len())
    }

    /// Redis server time (`TIME`), as the duration since the Unix epoch.
    pub async fn server_time(&self) -> Result<Duration> {
        self.ensure_open()?;
        let (secs, micros): (u64, u64) = self
            .client()
            .custom(
                CustomCommand::new_static("TIME", ClusterHash::Random, false),
                Vec::<String>::new(),
            )
            .await?;
        Ok(Duration::from_secs(secs) + Duration::from_micros(micros))
    }

    /// A new dedicated, connected client with the same configuration, for
    /// blocking commands (`BLPOP`, `XREAD BLOCK`, ...) that must never run on
    /// the shared multiplexed connection.
    pub async fn dedicated_client(&self) -> Result<Client> {
        self.ensure_open()?;
        let builder = self.builder()?;
        let client = builder.build()?;
        self.init_bounded(&client).await?;
        Ok(client)
    }

    /// A new connected pub/sub client with the same configuration; it
    /// re-subscribes to its channels after every reconnect.
    pub async fn subscriber(&self) -> Result<SubscriberClient> {
        self.ensure_open()?;
        let client = self.builder()?.build_subscriber_client()?;
        self.init_bounded(&client).await?;
        // the task lives as long as the client; detach it
        drop(client.manage_subscriptions());
        Ok(client)
    }

    fn builder(&self) -> Result<Builder> {
        builder_for(&self.inner.config)
    }

    async fn init_bounded<C: ClientLike>(&self, client: &C) -> Result<()> {
        let timeout = self.inner.config.connect_timeout;
        match tokio::time::timeout(timeout, client.init()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = client.quit().await;
                Err(Error::Timeout {
                    operation: "connect",
                    after: timeout,
                })
            }
        }
    }

    /// Health: PING round trip, connection state, and the server's version,
    /// role and memory (`INFO`). Never fails: a failed check reports
    /// [`HealthStatus::Unhealthy`] with the reason. Bounded by the command
    /// timeout.
    pub async fn health(&self) -> Health {
        let mut health = Health {
            status: HealthStatus::Unhealthy,
            latency: None,
            state: self.state(),
            connections: match &self.inner.backend {
                Backend::Single(c) => c.active_connections().len(),
                Backend::Pool(p) => p
                    .clients()
                    .iter()
                    .map(|c| c.active_connections().len())
                    .sum(),
            },
            server_version: None,
            role: None,
            used_memory: None,
            error: None,
        };
        if let Err(e) = self.ensure_open() {
            health.error = Some(e.to_string());
            return health;
        }
        let client = self.client();
        let started = Instant::now();
        match client.ping::<String>(None).await {
            Ok(_) => {
                health.latency = Some(started.elapsed());
                health.status = HealthStatus::Healthy;
            }
            Err(e) => {
                health.error = Some(e.to_string());
                return health;
            }
        }
        let info: Result<String, _> = client
            .custom(
                CustomCommand::new_static("INFO", ClusterHash::Random, false),
                vec!["server", "replication", "memory"],
            )
            .await;
        match info {
            Ok(info) => health.fill_from_info(&info),
            Err(e) => health.error = Some(e.to_string()),
        }
        health
    }

    /// Closes every connection gracefully (`QUIT` after in-flight commands)
    /// and stops the event tasks. Idempotent; later calls through this
    /// handle's methods return [`Error::Shutdown`].
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(watcher) = &self.inner.watcher {
            watcher.stop().await;
        }
        let result = match &self.inner.backend {
            Backend::Single(c) => c.quit().await,
            Backend::Pool(p) => p.quit().await,
        };
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        tracing::info!("Redis client shut down");
        result.map_err(Error::from)
    }
}

/// A fred builder carrying every setting of `config`.
fn builder_for(config: &RedisConfig) -> Result<Builder> {
    let (fred_config, policy, connection, performance) = config.fred_parts()?;
    let mut builder = Builder::from_config(fred_config);
    builder
        .set_policy(policy)
        .set_connection_config(connection)
        .set_performance_config(performance);
    Ok(builder)
}

fn describe(topology: &Topology) -> String {
    match topology {
        Topology::Standalone { host, port } => format!("standalone {host}:{port}"),
        Topology::Cluster { nodes } => format!("cluster ({} seed nodes)", nodes.len()),
        Topology::Sentinel {
            service_name,
            nodes,
        } => {
            format!("sentinel {service_name} ({} sentinels)", nodes.len())
        }
    }
}

/// Sends fred's connection events to tracing: errors (with the reconnect
/// attempt number), reconnections and unresponsive connections.
fn log_events(client: &Client) -> Vec<JoinHandle<fred::prelude::FredResult<()>>> {
    let c = client.clone();
    let errors = client.on_error(move |(error, server)| {
        let attempt = c.client_reconnect_policy().map_or(0, |p| p.attempts());
        let server = server.map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(%server, attempt, error = %error, "Redis connection error; reconnecting");
        async { Ok(()) }
    });
    let reconnects = client.on_reconnect(|server| {
        tracing::info!(server = %server, "Redis connection (re)established");
        async { Ok(()) }
    });
    let unresponsive = client.on_unresponsive(|server| {
        tracing::warn!(server = %server, "Redis connection unresponsive; closing it");
        async { Ok(()) }
    });
    vec![errors, reconnects, unresponsive]
}

//! Connection configuration: from a URL ([`RedisConfig::from_url`]), from
//! the environment ([`RedisConfig::from_env`], [`RedisConfig::from_lookup`])
//! or built by hand ([`RedisConfig::standalone`] and the `with_*` methods).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REDIS_URL` | full URL (`redis://`, `rediss://`, `redis-cluster://`, `redis-sentinel://`); wins over the topology variables below | unset |
//! | `REDIS_HOST` / `REDIS_PORT` | standalone server | `127.0.0.1` / `6379` |
//! | `REDIS_USERNAME` / `REDIS_PASSWORD` | ACL credentials (the password is never logged) | unset |
//! | `REDIS_DB` | database index (standalone and sentinel) | `0` |
//! | `REDIS_TOPOLOGY` | `standalone`, `cluster` or `sentinel` | `standalone` |
//! | `REDIS_CLUSTER_NODES` | `host:port,host:port,...` seed nodes when the topology is `cluster` | required for cluster |
//! | `REDIS_SENTINEL_SERVICE` | sentinel service (master) name | `mymaster` |
//! | `REDIS_SENTINEL_NODES` | `host:port,...` sentinels when the topology is `sentinel` | required for sentinel |
//! | `REDIS_TLS` | `true` to use TLS (needs the `tls` feature) | `false` |
//! | `REDIS_TLS_CA_FILE` | PEM file of the CA certificates to trust instead of the system roots | system roots |
//! | `REDIS_TLS_CERT_FILE` / `REDIS_TLS_KEY_FILE` | PEM client certificate chain and private key for mutual TLS; both or neither | unset (no client certificate) |
//! | `REDIS_CONNECT_TIMEOUT_MS` | bound on connecting, milliseconds | `10000` |
//! | `REDIS_COMMAND_TIMEOUT_MS` | default per-command timeout, milliseconds | `5000` |
//! | `REDIS_POOL_SIZE` | number of multiplexed connections (≥ 1) | `1` |
//! | `REDIS_MAX_COMMAND_ATTEMPTS` | how often fred may send a command whose connection dropped (≥ 1) | `3` |
//! | `REDIS_RECONNECT_MAX_DELAY_MS` | ceiling of the exponential reconnect backoff, milliseconds | `30000` |
//! | `REDIS_RECONNECT_MAX_ATTEMPTS` | reconnect attempts before giving up, `0` = never give up | `0` |
//! | `REDIS_FAIL_FAST` | `true`: a call made while the connection is known to be down fails at once | `false` |
//! | `REDIS_CODEC` | `msgpack` or `json` | `msgpack` |
//! | `CACHE_KEY_PREFIX` | key namespace | `aeturnis:` |
//!
//! Every variable is read by the workspace's one reader, [`Env`](crate::Env):
//! an empty value means unset, and an error names the variable.

mod client_cert;
mod env;
mod error;
mod fred;
mod secret;
#[cfg(feature = "tls")]
mod tls;
mod url;

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

pub use client_cert::TlsClientCert;
pub use error::ConfigError;
pub use secret::Secret;

use crate::codec::CodecKind;
use crate::duration::MAX_DURATION;
use crate::keys::KeySpace;

/// Where the Redis servers are and how they are arranged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One server (possibly with replicas that we do not read from).
    Standalone {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Redis Cluster; any reachable subset of nodes works as seeds.
    Cluster {
        /// Seed nodes.
        nodes: Vec<(String, u16)>,
    },
    /// A primary discovered through Redis Sentinel.
    Sentinel {
        /// The sentinel service (master) name.
        service_name: String,
        /// The sentinel nodes.
        nodes: Vec<(String, u16)>,
    },
}

impl Default for Topology {
    fn default() -> Self {
        Topology::Standalone {
            host: "127.0.0.1".to_owned(),
            port: 6379,
        }
    }
}

/// Reconnection backoff, handed to fred's exponential reconnect policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// First delay. Default: 100 ms.
    pub min_delay: Duration,
    /// Delay ceiling. Default: 30 s (the original system's ceiling).
    pub max_delay: Duration,
    /// Attempts before the client gives up; `0` never gives up. Default: `0`,
    /// so a long outage never leaves a dead client behind.
    pub max_attempts: u32,
    /// Random jitter added to each delay. Default: 100 ms.
    pub jitter: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_attempts: 0,
            jitter: Duration::from_millis(100),
        }
    }
}

impl ReconnectConfig {
    /// Sets the first delay.
    #[must_use]
    pub fn with_min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Sets the delay ceiling.
    #[must_use]
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets how many attempts are made before giving up (`0`: never).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the random jitter added to each delay.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
}

/// Everything needed to connect. Data only: see the `with_*` methods to
/// change it and [`Redis::connect`](crate::Redis::connect) to use it.
///
/// `Debug` prints the password as `***`, and of the TLS files only their
/// paths.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Servers. Default: standalone `127.0.0.1:6379`.
    pub topology: Topology,
    /// ACL user name. Default: none.
    pub username: Option<String>,
    /// Password. Default: none.
    pub password: Option<Secret>,
    /// Database index (standalone and sentinel only). Default: none (`0`).
    pub database: Option<u8>,
    /// Use TLS (`rediss://`); needs the crate's `tls` feature. Default: `false`.
    pub tls: bool,
    /// A PEM file of the CA certificates to trust for TLS, instead of the
    /// system roots (`REDIS_TLS_CA_FILE`); read when connecting. Default:
    /// none (the system roots).
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and key for servers that ask for one (mutual
    /// TLS; `REDIS_TLS_CERT_FILE` / `REDIS_TLS_KEY_FILE`); read when
    /// connecting. Default: none.
    pub tls_client_cert: Option<TlsClientCert>,
    /// Key namespace prefix. Default: `aeturnis:`.
    pub key_prefix: String,
    /// Value codec. Default: MessagePack.
    pub codec: CodecKind,
    /// Bound on [`Redis::connect`](crate::Redis::connect) and on each TCP
    /// connection attempt. Default: 10 s.
    pub connect_timeout: Duration,
    /// Default timeout of every command; a call made while Redis is down fails
    /// with a timeout error after at most this long. Default: 5 s.
    pub command_timeout: Duration,
    /// A connection with a reply outstanding for this long is treated as dead
    /// and reconnected: fred's check, plus a `PING` per client every this
    /// long, bounded by it, which also catches a dead connection under steady
    /// traffic (guide, "Down or slow"). `None` disables both. Default: 10 s.
    pub unresponsive_timeout: Option<Duration>,
    /// Reconnect backoff. Default: see [`ReconnectConfig`].
    pub reconnect: ReconnectConfig,
    /// How many times fred may send one command when its connection drops
    /// while the command is in flight (`1` = never replay). Default: `3`.
    /// Operations that are not idempotent use [`Redis::no_replay`](crate::Redis::no_replay).
    pub max_command_attempts: NonZeroU32,
    /// Fail `connect` at once when the first connection fails, instead of
    /// retrying until `connect_timeout`. Default: `true`.
    pub fail_fast: bool,
    /// While the client knows its connection is down (between a drop and
    /// the reconnect), fail calls made through [`Redis`](crate::Redis)'s
    /// script methods and [`Redis::ensure_connected`](crate::Redis::ensure_connected)
    /// at once with [`Error::Disconnected`](crate::Error::Disconnected),
    /// instead of queueing them until the connection is back or the
    /// command timeout passes.
    ///
    /// Default: `false`. Queueing turns a short blip (a reconnect takes one
    /// backoff step, 100 ms by default) into latency instead of errors, and
    /// the command timeout still bounds every call; a timeout and a dropped
    /// connection are both classed as unavailable (see [`crate::class`]).
    /// Turn it on where a fallback (another store, a local limiter) is
    /// better than waiting.
    pub fail_fast_commands: bool,
    /// Number of multiplexed connections; `1` means one auto-pipelined client,
    /// which measured faster than pools on 2 cores. Default: `1`.
    pub pool_size: NonZeroUsize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            topology: Topology::default(),
            username: None,
            password: None,
            database: None,
            tls: false,
            tls_ca_file: None,
            tls_client_cert: None,
            key_prefix: KeySpace::DEFAULT_PREFIX.to_owned(),
            codec: CodecKind::MessagePack,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(5),
            unresponsive_timeout: Some(Duration::from_secs(10)),
            reconnect: ReconnectConfig::default(),
            max_command_attempts: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            fail_fast: true,
            fail_fast_commands: false,
            pool_size: NonZeroUsize::MIN,
        }
    }
}

impl RedisConfig {
    /// A standalone server at `host:port`, every other setting at its
    /// default.
    ///
    /// ```
    /// use aeturnis_redis_core::{RedisConfig, Topology};
    /// let config = RedisConfig::standalone("10.0.0.5", 6380);
    /// assert_eq!(config.topology, Topology::Standalone { host: "10.0.0.5".into(), port: 6380 });
    /// ```
    #[must_use]
    pub fn standalone(host: impl Into<String>, port: u16) -> Self {
        RedisConfig {
            topology: Topology::Standalone {
                host: host.into(),
                port,
            },
            ..RedisConfig::default()
        }
    }

    /// Sets the topology.
    #[must_use]
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Sets the ACL user name and password.
    #[must_use]
    pub fn with_credentials(mut self, username: Option<String>, password: Option<Secret>) -> Self {
        self.username = username;
        self.password = password;
        self
    }

    /// Sets the database index.
    #[must_use]
    pub fn with_database(mut self, database: u8) -> Self {
        self.database = Some(database);
        self
    }

    /// Sets the key prefix (validated by [`validate`](Self::validate)).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the codec.
    #[must_use]
    pub fn with_codec(mut self, codec: CodecKind) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the connect bound.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the default command timeout.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Trusts the CA certificates of the PEM file at `path` for TLS instead
    /// of the system roots.
    #[must_use]
    pub fn with_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Shows the client certificate chain of the PEM file at `cert_file`,
    /// with the private key of the PEM file at `key_file`, to a server that
    /// asks for one (mutual TLS).
    #[must_use]
    pub fn with_tls_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.tls_client_cert = Some(TlsClientCert::new(cert_file, key_file));
        self
    }

    /// Sets the unresponsive-connection bound (`None` disables it).
    #[must_use]
    pub fn with_unresponsive_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.unresponsive_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff.
    #[must_use]
    pub fn with_reconnect(mut self, reconnect: ReconnectConfig) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets how often a command may be sent when its connection drops (`1` = no replay).
    #[must_use]
    pub fn with_max_command_attempts(mut self, attempts: NonZeroU32) -> Self {
        self.max_command_attempts = attempts;
        self
    }

    /// Sets whether `connect` fails at once on the first connection error.
    #[must_use]
    pub fn with_fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Sets whether calls fail at once while the connection is known to be
    /// down (see [`fail_fast_commands`](Self::fail_fast_commands)).
    #[must_use]
    pub fn with_fail_fast_commands(mut self, fail_fast: bool) -> Self {
        self.fail_fast_commands = fail_fast;
        self
    }

    /// Sets the number of pooled connections.
    #[must_use]
    pub fn with_pool_size(mut self, size: NonZeroUsize) -> Self {
        self.pool_size = size;
        self
    }

    /// Checks every setting, naming the first bad one: an invalid prefix,
    /// a zero or over-long duration (see [`crate::duration`]), an empty
    /// host, port 0, no nodes, an empty sentinel service name, TLS without
    /// the `tls` feature, TLS files without TLS, and (reading them) a CA
    /// file, client certificate or private key that cannot be used.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        KeySpace::new(&self.key_prefix)
            .map_err(|e| ConfigError::invalid("key_prefix", e.to_string()))?;
        let bounded = |name: &str, d: Duration| {
            crate::duration::check(d)
                .map(drop)
                .map_err(|e| ConfigError::duration(name, e))
        };
        bounded("connect_timeout", self.connect_timeout)?;
        bounded("command_timeout", self.command_timeout)?;
        if let Some(t) = self.unresponsive_timeout {
            bounded("unresponsive_timeout", t)?;
        }
        bounded("reconnect.min_delay", self.reconnect.min_delay)?;
        bounded("reconnect.max_delay", self.reconnect.max_delay)?;
        if self.reconnect.max_delay < self.reconnect.min_delay {
            return Err(ConfigError::invalid(
                "reconnect.max_delay",
                "must not be below min_delay",
            ));
        }
        if self.reconnect.jitter > MAX_DURATION {
            return Err(ConfigError::invalid(
                "reconnect.jitter",
                format!("above the maximum of {MAX_DURATION:?}"),
            ));
        }
        let check_nodes = |nodes: &[(String, u16)]| {
            if nodes.is_empty() {
                return Err(ConfigError::invalid("nodes", "at least one node is needed"));
            }
            for (host, port) in nodes {
                if host.is_empty() {
                    return Err(ConfigError::invalid("nodes", "a node has an empty host"));
                }
                if *port == 0 {
                    return Err(ConfigError::invalid(
                        "nodes",
                        format!("{host}: port 0 is not allowed"),
                    ));
                }
            }
            Ok(())
        };
        match &self.topology {
            Topology::Standalone { host, port } => {
                if host.is_empty() {
                    return Err(ConfigError::invalid("host", "must not be empty"));
                }
                if *port == 0 {
                    return Err(ConfigError::invalid("port", "port 0 is not allowed"));
                }
            }
            Topology::Cluster { nodes } => check_nodes(nodes)?,
            Topology::Sentinel {
                service_name,
                nodes,
            } => {
                check_nodes(nodes)?;
                if service_name.is_empty() {
                    return Err(ConfigError::invalid(
                        "sentinel service_name",
                        "must not be empty",
                    ));
                }
            }
        }
        if self.tls && !cfg!(feature = "tls") {
            return Err(ConfigError::invalid(
                "tls",
                "built without the `tls` feature",
            ));
        }
        for (name, set) in [
            ("tls_ca_file", self.tls_ca_file.is_some()),
            ("tls_client_cert", self.tls_client_cert.is_some()),
        ] {
            if set && !self.tls {
                return Err(ConfigError::invalid(
                    name,
                    "set without TLS (use rediss:// or REDIS_TLS=true)",
                ));
            }
        }
        // reads and parses the CA file and the client certificate, if any
        self.fred_parts().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_build_by_hand_with_every_with_method() {
        let reconnect = ReconnectConfig::default()
            .with_min_delay(Duration::from_millis(5))
            .with_max_delay(Duration::from_secs(1))
            .with_max_attempts(4)
            .with_jitter(Duration::ZERO);
        let c = RedisConfig::standalone("h", 7000)
            .with_reconnect(reconnect.clone())
            .with_pool_size(NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))
            .with_max_command_attempts(NonZeroU32::MIN)
            .with_fail_fast_commands(true);
        assert_eq!(c.reconnect, reconnect);
        assert_eq!(c.reconnect.max_attempts, 4);
        assert_eq!(c.pool_size.get(), 2);
        assert_eq!(c.max_command_attempts.get(), 1);
        assert!(c.fail_fast_commands);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn should_bound_every_duration_at_construction() {
        let cases: [(&str, RedisConfig); 6] = [
            (
                "connect_timeout",
                RedisConfig::default().with_connect_timeout(Duration::MAX),
            ),
            (
                "command_timeout",
                RedisConfig::default().with_command_timeout(Duration::ZERO),
            ),
            (
                "command_timeout",
                RedisConfig::default().with_command_timeout(MAX_DURATION + Duration::from_secs(1)),
            ),
            (
                "unresponsive_timeout",
                RedisConfig::default().with_unresponsive_timeout(Some(Duration::MAX)),
            ),
            (
                "reconnect.max_delay",
                RedisConfig::default()
                    .with_reconnect(ReconnectConfig::default().with_max_delay(Duration::MAX)),
            ),
            (
                "reconnect.jitter",
                RedisConfig::default()
                    .with_reconnect(ReconnectConfig::default().with_jitter(Duration::MAX)),
            ),
        ];
        for (name, config) in cases {
            let err = config.validate().expect_err(name);
            assert_eq!(err.variable(), name, "{err}");
        }
        let longest = RedisConfig::default()
            .with_command_timeout(MAX_DURATION)
            .with_connect_timeout(MAX_DURATION);
        assert_eq!(longest.validate(), Ok(()));
    }

    #[test]
    fn should_refuse_port_zero_and_empty_nodes() {
        let err = RedisConfig::standalone("h", 0)
            .validate()
            .expect_err("port 0");
        assert_eq!(err.variable(), "port");
        let cluster = RedisConfig::default().with_topology(Topology::Cluster {
            nodes: vec![("a".into(), 1), ("b".into(), 0)],
        });
        assert_eq!(
            cluster.validate().map_err(|e| e.variable().to_owned()),
            Err("nodes".into())
        );
        let none = RedisConfig::default().with_topology(Topology::Cluster { nodes: vec![] });
        assert!(none.validate().is_err_and(|e| e.variable() == "nodes"));
    }
}

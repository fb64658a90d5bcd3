//! Connection configuration: from a URL, from the environment, or built by hand.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REDIS_URL` | full URL (`redis://`, `rediss://`, `redis-cluster://`, `redis-sentinel://`); wins over the variables below | unset |
//! | `REDIS_HOST` / `REDIS_PORT` | standalone server | `127.0.0.1` / `6379` |
//! | `REDIS_USERNAME` / `REDIS_PASSWORD` | ACL credentials (the password is never logged) | unset |
//! | `REDIS_DB` | database index (standalone and sentinel) | `0` |
//! | `REDIS_TOPOLOGY` | `standalone`, `cluster` or `sentinel` | `standalone` |
//! | `REDIS_CLUSTER_NODES` | `host:port,host:port,...` seed nodes when the topology is `cluster` | required for cluster |
//! | `REDIS_SENTINEL_SERVICE` | sentinel service (master) name | `mymaster` |
//! | `REDIS_SENTINEL_NODES` | `host:port,...` sentinels when the topology is `sentinel` | required for sentinel |
//! | `REDIS_TLS` | `true` to use TLS (needs the `tls` feature) | `false` |
//! | `REDIS_CONNECT_TIMEOUT_MS` | bound on connecting | `10000` |
//! | `REDIS_COMMAND_TIMEOUT_MS` | default per-command timeout | `5000` |
//! | `REDIS_POOL_SIZE` | number of multiplexed connections | `1` |
//! | `REDIS_MAX_COMMAND_ATTEMPTS` | how often fred may send a command whose connection dropped | `3` |
//! | `REDIS_RECONNECT_MAX_DELAY_MS` | ceiling of the exponential reconnect backoff | `30000` |
//! | `REDIS_RECONNECT_MAX_ATTEMPTS` | reconnect attempts before giving up, `0` = never give up | `0` |
//! | `REDIS_CODEC` | `msgpack` or `json` | `msgpack` |
//! | `CACHE_KEY_PREFIX` | key namespace | `aeturnis:` |

use std::fmt;
use std::time::Duration;

use fred::types::config::{
    Config as FredConfig, ConnectionConfig, PerformanceConfig, ReconnectPolicy, ServerConfig,
    UnresponsiveConfig,
};

use crate::codec::CodecKind;
use crate::keys::KeySpace;

/// A configuration value that is wrong, naming the variable (or URL part) at fault.
///
/// The message never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable or setting holds a value that cannot be used.
    #[error("invalid {variable}: {reason}")]
    Invalid {
        /// The environment variable or setting name, such as `REDIS_PORT`.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A variable that the chosen topology needs is missing.
    #[error("missing {variable}: {reason}")]
    Missing {
        /// The environment variable or setting name.
        variable: String,
        /// Why it is needed.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(variable: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }

    /// The variable or setting this error is about.
    #[must_use]
    pub fn variable(&self) -> &str {
        match self {
            ConfigError::Invalid { variable, .. } | ConfigError::Missing { variable, .. } => {
                variable
            }
        }
    }
}

/// A password. Its `Debug` and `Display` print `***`, so it cannot leak into
/// logs by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

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

/// Reconnection backoff, handed to fred's exponential [`ReconnectPolicy`].
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

/// Everything needed to connect. Data only: see the `with_*` methods to
/// change it and [`Redis::connect`](crate::Redis::connect) to use it.
///
/// `Debug` prints the password as `***`.
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
    /// and reconnected. `None` disables the check. Default: 10 s.
    pub unresponsive_timeout: Option<Duration>,
    /// Reconnect backoff. Default: see [`ReconnectConfig`].
    pub reconnect: ReconnectConfig,
    /// How many times fred may send one command when its connection drops
    /// while the command is in flight (`1` = never replay). Default: `3`.
    /// Operations that are not idempotent use [`Redis::no_replay`](crate::Redis::no_replay).
    pub max_command_attempts: u32,
    /// Fail `connect` at once when the first connection fails, instead of
    /// retrying until `connect_timeout`. Default: `true`.
    pub fail_fast: bool,
    /// Number of multiplexed connections; `1` means one auto-pipelined client,
    /// which measured faster than pools on 2 cores. Default: `1`.
    pub pool_size: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            topology: Topology::default(),
            username: None,
            password: None,
            database: None,
            tls: false,
            key_prefix: KeySpace::DEFAULT_PREFIX.to_owned(),
            codec: CodecKind::MessagePack,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(5),
            unresponsive_timeout: Some(Duration::from_secs(10)),
            reconnect: ReconnectConfig::default(),
            max_command_attempts: 3,
            fail_fast: true,
            pool_size: 1,
        }
    }
}

impl RedisConfig {
    /// Parses a URL: `redis://[user[:password]@]host[:port][/db]`, `rediss://`
    /// (TLS), `redis-cluster://host:port?node=host:port&node=...` and
    /// `redis-sentinel://host:port[/db]?sentinelServiceName=NAME&node=host:port`.
    ///
    /// ```
    /// use aeturnis_redis_core::{RedisConfig, Topology};
    /// let config = RedisConfig::from_url("redis://:hunter2@10.0.0.5:6380/2")?;
    /// assert_eq!(config.database, Some(2));
    /// assert!(!format!("{config:?}").contains("hunter2"));
    /// # Ok::<(), aeturnis_redis_core::ConfigError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::parse_url("url", url)
    }

    fn parse_url(variable: &str, url: &str) -> Result<Self, ConfigError> {
        let fred = FredConfig::from_url(url)
            .map_err(|e| ConfigError::invalid(variable, redact(e.details(), url)))?;
        let tls = url.starts_with("rediss") || url.starts_with("valkeys");
        #[cfg(not(feature = "tls"))]
        if tls {
            return Err(ConfigError::invalid(
                variable,
                "TLS URL given but aeturnis-redis-core was built without the `tls` feature",
            ));
        }
        let topology = match fred.server {
            ServerConfig::Centralized { server } => Topology::Standalone {
                host: server.host.to_string(),
                port: server.port,
            },
            ServerConfig::Clustered { hosts, .. } => Topology::Cluster {
                nodes: hosts
                    .into_iter()
                    .map(|s| (s.host.to_string(), s.port))
                    .collect(),
            },
            ServerConfig::Sentinel {
                hosts,
                service_name,
            } => Topology::Sentinel {
                service_name,
                nodes: hosts
                    .into_iter()
                    .map(|s| (s.host.to_string(), s.port))
                    .collect(),
            },
            #[allow(unreachable_patterns)]
            _ => return Err(ConfigError::invalid(variable, "unsupported URL scheme")),
        };
        Ok(RedisConfig {
            topology,
            username: fred.username,
            password: fred.password.map(Secret),
            database: fred.database,
            tls,
            ..RedisConfig::default()
        })
    }

    /// Reads the process environment; see the [module docs](self) for the
    /// variables. Errors name the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (useful for tests and for other configuration sources).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = match get("REDIS_URL") {
            Some(url) => Self::parse_url("REDIS_URL", url.trim())?,
            None => {
                let topology = match get("REDIS_TOPOLOGY").as_deref().map(str::trim) {
                    None | Some("standalone") => Topology::Standalone {
                        host: get("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
                        port: match get("REDIS_PORT") {
                            Some(p) => parse_port("REDIS_PORT", &p)?,
                            None => 6379,
                        },
                    },
                    Some("cluster") => Topology::Cluster {
                        nodes: parse_nodes("REDIS_CLUSTER_NODES", get("REDIS_CLUSTER_NODES"))?,
                    },
                    Some("sentinel") => Topology::Sentinel {
                        service_name: get("REDIS_SENTINEL_SERVICE")
                            .unwrap_or_else(|| "mymaster".to_owned()),
                        nodes: parse_nodes("REDIS_SENTINEL_NODES", get("REDIS_SENTINEL_NODES"))?,
                    },
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            "REDIS_TOPOLOGY",
                            format!("`{other}` is not one of standalone, cluster, sentinel"),
                        ))
                    }
                };
                RedisConfig {
                    topology,
                    username: get("REDIS_USERNAME"),
                    password: lookup("REDIS_PASSWORD")
                        .filter(|p| !p.is_empty())
                        .map(Secret),
                    database: get("REDIS_DB")
                        .map(|v| parse_num::<u8>("REDIS_DB", &v))
                        .transpose()?,
                    tls: get("REDIS_TLS")
                        .map(|v| parse_bool("REDIS_TLS", &v))
                        .transpose()?
                        .unwrap_or(false),
                    ..RedisConfig::default()
                }
            }
        };
        if let Some(v) = get("CACHE_KEY_PREFIX") {
            KeySpace::new(&v)
                .map_err(|e| ConfigError::invalid("CACHE_KEY_PREFIX", e.to_string()))?;
            config.key_prefix = v;
        }
        if let Some(v) = get("REDIS_CODEC") {
            config.codec = match v.trim() {
                "msgpack" | "messagepack" => CodecKind::MessagePack,
                "json" => CodecKind::Json,
                other => {
                    return Err(ConfigError::invalid(
                        "REDIS_CODEC",
                        format!("`{other}` is not one of msgpack, json"),
                    ))
                }
            };
        }
        if let Some(v) = get("REDIS_CONNECT_TIMEOUT_MS") {
            config.connect_timeout = parse_ms("REDIS_CONNECT_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("REDIS_COMMAND_TIMEOUT_MS") {
            config.command_timeout = parse_ms("REDIS_COMMAND_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("REDIS_POOL_SIZE") {
            config.pool_size = parse_num::<usize>("REDIS_POOL_SIZE", &v)?;
        }
        if let Some(v) = get("REDIS_MAX_COMMAND_ATTEMPTS") {
            config.max_command_attempts = parse_num::<u32>("REDIS_MAX_COMMAND_ATTEMPTS", &v)?;
        }
        if let Some(v) = get("REDIS_RECONNECT_MAX_DELAY_MS") {
            config.reconnect.max_delay = parse_ms("REDIS_RECONNECT_MAX_DELAY_MS", &v)?;
        }
        if let Some(v) = get("REDIS_RECONNECT_MAX_ATTEMPTS") {
            config.reconnect.max_attempts = parse_num::<u32>("REDIS_RECONNECT_MAX_ATTEMPTS", &v)?;
        }
        config.validate()?;
        Ok(config)
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
    pub fn with_max_command_attempts(mut self, attempts: u32) -> Self {
        self.max_command_attempts = attempts;
        self
    }

    /// Sets whether `connect` fails at once on the first connection error.
    #[must_use]
    pub fn with_fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Sets the number of pooled connections.
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        KeySpace::new(&self.key_prefix)
            .map_err(|e| ConfigError::invalid("key_prefix", e.to_string()))?;
        let nonzero = |name: &str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::invalid(name, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        nonzero("connect_timeout", self.connect_timeout)?;
        nonzero("command_timeout", self.command_timeout)?;
        if let Some(t) = self.unresponsive_timeout {
            nonzero("unresponsive_timeout", t)?;
        }
        nonzero("reconnect.min_delay", self.reconnect.min_delay)?;
        if self.reconnect.max_delay < self.reconnect.min_delay {
            return Err(ConfigError::invalid(
                "reconnect.max_delay",
                "must not be below min_delay",
            ));
        }
        if self.max_command_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_command_attempts",
                "must be at least 1",
            ));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::invalid("pool_size", "must be at least 1"));
        }
        match &self.topology {
            Topology::Standalone { host, port } => {
                if host.is_empty() {
                    return Err(ConfigError::invalid("host", "must not be empty"));
                }
                if *port == 0 {
                    return Err(ConfigError::invalid("port", "must not be 0"));
                }
            }
            Topology::Cluster { nodes } | Topology::Sentinel { nodes, .. } if nodes.is_empty() => {
                return Err(ConfigError::invalid("nodes", "at least one node is needed"));
            }
            Topology::Sentinel { service_name, .. } if service_name.is_empty() => {
                return Err(ConfigError::invalid(
                    "sentinel service_name",
                    "must not be empty",
                ));
            }
            _ => {}
        }
        if self.tls && !cfg!(feature = "tls") {
            return Err(ConfigError::invalid(
                "tls",
                "built without the `tls` feature",
            ));
        }
        Ok(())
    }

    pub(crate) fn fred_parts(
        &self,
    ) -> (
        FredConfig,
        ReconnectPolicy,
        ConnectionConfig,
        PerformanceConfig,
    ) {
        fn to_server(nodes: &[(String, u16)]) -> Vec<(&str, u16)> {
            nodes.iter().map(|(h, p)| (h.as_str(), *p)).collect()
        }
        let server = match &self.topology {
            Topology::Standalone { host, port } => {
                ServerConfig::new_centralized(host.as_str(), *port)
            }
            Topology::Cluster { nodes } => ServerConfig::new_clustered(to_server(nodes)),
            Topology::Sentinel {
                service_name,
                nodes,
            } => ServerConfig::new_sentinel(to_server(nodes), service_name.as_str()),
        };
        #[allow(unused_mut)]
        let mut fred = FredConfig {
            server,
            username: self.username.clone(),
            password: self.password.as_ref().map(|p| p.expose().to_owned()),
            database: self.database,
            fail_fast: self.fail_fast,
            ..FredConfig::default()
        };
        #[cfg(feature = "tls")]
        if self.tls {
            fred.tls = fred::types::config::TlsConnector::default_rustls()
                .ok()
                .map(Into::into);
        }
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let mut policy = ReconnectPolicy::new_exponential(
            self.reconnect.max_attempts,
            ms(self.reconnect.min_delay),
            ms(self.reconnect.max_delay),
            2,
        );
        policy.set_jitter(ms(self.reconnect.jitter));
        let connection = ConnectionConfig {
            connection_timeout: self.connect_timeout,
            internal_command_timeout: self.command_timeout,
            max_command_attempts: self.max_command_attempts,
            unresponsive: UnresponsiveConfig {
                max_timeout: self.unresponsive_timeout,
                interval: self
                    .unresponsive_timeout
                    .map_or(Duration::from_secs(2), |t| {
                        (t / 3).max(Duration::from_millis(50))
                    }),
            },
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: self.command_timeout,
            ..PerformanceConfig::default()
        };
        (fred, policy, connection, performance)
    }
}

/// Replaces the URL's password (if any) in `text` by `***`.
fn redact(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|auth| auth.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw)
        .filter(|pw| !pw.is_empty());
    match password {
        Some(pw) => text.replace(pw, "***"),
        None => text.to_owned(),
    }
}

fn parse_num<T: std::str::FromStr>(variable: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| {
        ConfigError::invalid(
            variable,
            format!("`{}` is not a valid number: {e}", value.trim()),
        )
    })
}

fn parse_port(variable: &str, value: &str) -> Result<u16, ConfigError> {
    match parse_num::<u16>(variable, value)? {
        0 => Err(ConfigError::invalid(variable, "port 0 is not allowed")),
        p => Ok(p),
    }
}

fn parse_ms(variable: &str, value: &str) -> Result<Duration, ConfigError> {
    match parse_num::<u64>(variable, value)? {
        0 => Err(ConfigError::invalid(variable, "must be greater than zero")),
        ms => Ok(Duration::from_millis(ms)),
    }
}

fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::invalid(
            variable,
            format!("`{other}` is not a boolean"),
        )),
    }
}

fn parse_nodes(variable: &str, value: Option<String>) -> Result<Vec<(String, u16)>, ConfigError> {
    let value = value.ok_or_else(|| ConfigError::Missing {
        variable: variable.to_owned(),
        reason: "needed for this REDIS_TOPOLOGY".to_owned(),
    })?;
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|node| {
            let (host, port) = node.rsplit_once(':').ok_or_else(|| {
                ConfigError::invalid(variable, format!("`{node}` is not host:port"))
            })?;
            if host.is_empty() {
                return Err(ConfigError::invalid(
                    variable,
                    format!("`{node}` has no host"),
                ));
            }
            Ok((host.to_owned(), parse_port(variable, port)?))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|nodes| {
            if nodes.is_empty() {
                Err(ConfigError::invalid(variable, "no nodes listed"))
            } else {
                Ok(nodes)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<RedisConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RedisConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn should_parse_every_url_form() {
        let c = RedisConfig::from_url("redis://user:pw@example.com:6380/3").unwrap();
        assert_eq!(
            c.topology,
            Topology::Standalone {
                host: "example.com".into(),
                port: 6380
            }
        );
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password, Some(Secret::new("pw")));
        assert_eq!(c.database, Some(3));

        let c = RedisConfig::from_url("redis-cluster://a:7000?node=b:7001&node=c:7002").unwrap();
        match c.topology {
            Topology::Cluster { nodes } => assert_eq!(nodes.len(), 3),
            other => panic!("unexpected topology {other:?}"),
        }

        let c = RedisConfig::from_url(
            "redis-sentinel://s1:26379/1?sentinelServiceName=svc&node=s2:26380",
        )
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Sentinel {
                service_name: "svc".into(),
                nodes: vec![("s2".into(), 26380), ("s1".into(), 26379)]
            }
        );
        assert_eq!(c.database, Some(1));
    }

    #[test]
    fn should_reject_bad_urls_without_echoing_the_password() {
        let err = RedisConfig::from_url("redis://u:s3cr3tpw@host:notaport").unwrap_err();
        assert_eq!(err.variable(), "url");
        assert!(!err.to_string().contains("s3cr3tpw"), "{err}");
        let err = RedisConfig::from_url("redis-sentinel://h:1").unwrap_err();
        assert_eq!(err.variable(), "url");
        let err = env(&[("REDIS_URL", "http://x:s3cr3tpw@h")]);
        if let Err(e) = err {
            assert!(!e.to_string().contains("s3cr3tpw"));
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn should_refuse_tls_urls_without_the_tls_feature() {
        let err = RedisConfig::from_url("rediss://h:6380").unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }

    #[test]
    fn should_read_every_env_form() {
        let c = env(&[
            ("REDIS_HOST", "h1"),
            ("REDIS_PORT", "7000"),
            ("REDIS_USERNAME", "bob"),
            ("REDIS_PASSWORD", "pw"),
            ("REDIS_DB", "4"),
            ("CACHE_KEY_PREFIX", "game:"),
            ("REDIS_CODEC", "json"),
            ("REDIS_COMMAND_TIMEOUT_MS", "250"),
            ("REDIS_CONNECT_TIMEOUT_MS", "1500"),
            ("REDIS_POOL_SIZE", "4"),
            ("REDIS_MAX_COMMAND_ATTEMPTS", "1"),
            ("REDIS_RECONNECT_MAX_DELAY_MS", "5000"),
            ("REDIS_RECONNECT_MAX_ATTEMPTS", "7"),
        ])
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Standalone {
                host: "h1".into(),
                port: 7000
            }
        );
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.database, Some(4));
        assert_eq!(c.key_prefix, "game:");
        assert_eq!(c.codec, CodecKind::Json);
        assert_eq!(c.command_timeout, Duration::from_millis(250));
        assert_eq!(c.connect_timeout, Duration::from_millis(1500));
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.max_command_attempts, 1);
        assert_eq!(c.reconnect.max_delay, Duration::from_secs(5));
        assert_eq!(c.reconnect.max_attempts, 7);

        let c = env(&[
            ("REDIS_TOPOLOGY", "cluster"),
            ("REDIS_CLUSTER_NODES", "a:1, b:2,c:3"),
        ])
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Cluster {
                nodes: vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
            }
        );
        let c = env(&[
            ("REDIS_TOPOLOGY", "sentinel"),
            ("REDIS_SENTINEL_NODES", "s:26379"),
        ])
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Sentinel {
                service_name: "mymaster".into(),
                nodes: vec![("s".into(), 26379)]
            }
        );
        let c = env(&[("REDIS_URL", "redis://h:1234"), ("REDIS_HOST", "ignored")]).unwrap();
        assert_eq!(
            c.topology,
            Topology::Standalone {
                host: "h".into(),
                port: 1234
            }
        );
        assert_eq!(env(&[]).unwrap(), RedisConfig::default());
    }

    #[test]
    fn should_name_the_variable_of_each_bad_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("REDIS_PORT", "abc")], "REDIS_PORT"),
            (&[("REDIS_PORT", "0")], "REDIS_PORT"),
            (&[("REDIS_PORT", "70000")], "REDIS_PORT"),
            (&[("REDIS_DB", "-1")], "REDIS_DB"),
            (&[("REDIS_TLS", "maybe")], "REDIS_TLS"),
            (&[("REDIS_TOPOLOGY", "mesh")], "REDIS_TOPOLOGY"),
            (&[("REDIS_TOPOLOGY", "cluster")], "REDIS_CLUSTER_NODES"),
            (
                &[
                    ("REDIS_TOPOLOGY", "cluster"),
                    ("REDIS_CLUSTER_NODES", "nohost"),
                ],
                "REDIS_CLUSTER_NODES",
            ),
            (
                &[
                    ("REDIS_TOPOLOGY", "sentinel"),
                    ("REDIS_SENTINEL_NODES", "h:x"),
                ],
                "REDIS_SENTINEL_NODES",
            ),
            (&[("REDIS_CODEC", "xml")], "REDIS_CODEC"),
            (
                &[("REDIS_COMMAND_TIMEOUT_MS", "0")],
                "REDIS_COMMAND_TIMEOUT_MS",
            ),
            (
                &[("REDIS_CONNECT_TIMEOUT_MS", "soon")],
                "REDIS_CONNECT_TIMEOUT_MS",
            ),
            (&[("REDIS_POOL_SIZE", "many")], "REDIS_POOL_SIZE"),
            (
                &[("REDIS_MAX_COMMAND_ATTEMPTS", "x")],
                "REDIS_MAX_COMMAND_ATTEMPTS",
            ),
            (
                &[("REDIS_RECONNECT_MAX_DELAY_MS", "-5")],
                "REDIS_RECONNECT_MAX_DELAY_MS",
            ),
            (
                &[("REDIS_RECONNECT_MAX_ATTEMPTS", "1.5")],
                "REDIS_RECONNECT_MAX_ATTEMPTS",
            ),
            (&[("CACHE_KEY_PREFIX", "bad prefix*")], "CACHE_KEY_PREFIX"),
            (&[("REDIS_URL", "redis://h:port")], "REDIS_URL"),
        ];
        for (vars, name) in cases {
            let err = env(vars).expect_err(name);
            assert!(err.to_string().contains(name), "{err} should name {name}");
        }
        let err = env(&[("REDIS_POOL_SIZE", "0")]).unwrap_err();
        assert_eq!(err.variable(), "pool_size");
    }

    #[test]
    fn should_never_show_the_password_in_debug() {
        let c = env(&[("REDIS_PASSWORD", "topsecret")]).unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
        assert!(!format!("{c:#?}").contains("topsecret"));
        let c = RedisConfig::from_url("redis://:topsecret@h:1").unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
        assert_eq!(format!("{}", Secret::new("topsecret")), "***");
    }
}

//! [`RedisConfig::from_env`] and [`RedisConfig::from_lookup`], read through
//! the workspace's one [`Env`] reader.

use crate::codec::CodecKind;
use crate::env::Env;
use crate::keys::KeySpace;

use super::{ConfigError, RedisConfig, TlsClientCert, Topology};

impl RedisConfig {
    /// Reads the process environment; see the [module docs](super) for the
    /// variables.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (useful for tests and for other configuration sources).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_reader(&Env::new(lookup))
    }

    /// Reads the variables through an [`Env`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable at fault.
    pub fn from_reader<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let mut config = match env.string("REDIS_URL") {
            Some(url) => Self::parse_url("REDIS_URL", &url)?,
            None => {
                let topology = match env.one_of(
                    "REDIS_TOPOLOGY",
                    &[("standalone", 0), ("cluster", 1), ("sentinel", 2)],
                )? {
                    None | Some(0) => Topology::Standalone {
                        host: env
                            .string("REDIS_HOST")
                            .unwrap_or_else(|| "127.0.0.1".to_owned()),
                        port: env.port("REDIS_PORT")?.unwrap_or(6379),
                    },
                    Some(1) => Topology::Cluster {
                        nodes: env.require(
                            "REDIS_CLUSTER_NODES",
                            env.nodes("REDIS_CLUSTER_NODES")?,
                            "needed when REDIS_TOPOLOGY is cluster",
                        )?,
                    },
                    Some(_) => Topology::Sentinel {
                        service_name: env
                            .string("REDIS_SENTINEL_SERVICE")
                            .unwrap_or_else(|| "mymaster".to_owned()),
                        nodes: env.require(
                            "REDIS_SENTINEL_NODES",
                            env.nodes("REDIS_SENTINEL_NODES")?,
                            "needed when REDIS_TOPOLOGY is sentinel",
                        )?,
                    },
                };
                RedisConfig {
                    topology,
                    username: env.string("REDIS_USERNAME"),
                    password: env.secret("REDIS_PASSWORD"),
                    database: env.parse::<u8>("REDIS_DB")?,
                    tls: env.bool("REDIS_TLS")?.unwrap_or(false),
                    ..RedisConfig::default()
                }
            }
        };
        config.tls_ca_file = env.string("REDIS_TLS_CA_FILE").map(Into::into);
        config.tls_client_cert = match (
            env.string("REDIS_TLS_CERT_FILE"),
            env.string("REDIS_TLS_KEY_FILE"),
        ) {
            (Some(cert), Some(key)) => Some(TlsClientCert::new(cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(missing_half("REDIS_TLS_KEY_FILE", "REDIS_TLS_CERT_FILE"))
            }
            (None, Some(_)) => {
                return Err(missing_half("REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE"))
            }
        };
        if let Some(v) = env.string("CACHE_KEY_PREFIX") {
            KeySpace::new(&v)
                .map_err(|e| ConfigError::invalid("CACHE_KEY_PREFIX", e.to_string()))?;
            config.key_prefix = v;
        }
        if let Some(codec) = env.one_of(
            "REDIS_CODEC",
            &[
                ("msgpack", CodecKind::MessagePack),
                ("messagepack", CodecKind::MessagePack),
                ("json", CodecKind::Json),
            ],
        )? {
            config.codec = codec;
        }
        if let Some(d) = env.millis("REDIS_CONNECT_TIMEOUT_MS")? {
            config.connect_timeout = d;
        }
        if let Some(d) = env.millis("REDIS_COMMAND_TIMEOUT_MS")? {
            config.command_timeout = d;
        }
        if let Some(n) = env.non_zero_usize("REDIS_POOL_SIZE")? {
            config.pool_size = n;
        }
        if let Some(n) = env.non_zero_u32("REDIS_MAX_COMMAND_ATTEMPTS")? {
            config.max_command_attempts = n;
        }
        if let Some(d) = env.millis("REDIS_RECONNECT_MAX_DELAY_MS")? {
            config.reconnect.max_delay = d;
        }
        if let Some(n) = env.parse::<u32>("REDIS_RECONNECT_MAX_ATTEMPTS")? {
            config.reconnect.max_attempts = n;
        }
        if let Some(b) = env.bool("REDIS_FAIL_FAST")? {
            config.fail_fast_commands = b;
        }
        config.validate()?;
        Ok(config)
    }
}

/// One half of the client certificate pair is set without the other.
fn missing_half(missing: &str, set: &str) -> ConfigError {
    ConfigError::Missing {
        variable: missing.to_owned(),
        reason: format!("{set} is set: a client certificate needs both files"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::Secret;
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<RedisConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RedisConfig::from_lookup(|k| map.get(k).cloned())
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
            ("REDIS_FAIL_FAST", "yes"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
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
        assert_eq!(c.pool_size.get(), 4);
        assert!(c.fail_fast_commands);
        assert_eq!(c.max_command_attempts.get(), 1);
        assert_eq!(c.reconnect.max_delay, Duration::from_secs(5));
        assert_eq!(c.reconnect.max_attempts, 7);

        let c = env(&[
            ("REDIS_TOPOLOGY", "cluster"),
            ("REDIS_CLUSTER_NODES", "a:1, b:2,c:3"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
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
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.topology,
            Topology::Sentinel {
                service_name: "mymaster".into(),
                nodes: vec![("s".into(), 26379)]
            }
        );
        let c = env(&[("REDIS_URL", "redis://h:1234"), ("REDIS_HOST", "ignored")])
            .unwrap_or_else(|e| panic!("{e}"));
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
        for (vars, name) in [
            (&[("REDIS_POOL_SIZE", "0")][..], "REDIS_POOL_SIZE"),
            (
                &[("REDIS_MAX_COMMAND_ATTEMPTS", "0")],
                "REDIS_MAX_COMMAND_ATTEMPTS",
            ),
            (&[("REDIS_FAIL_FAST", "perhaps")], "REDIS_FAIL_FAST"),
            (&[("REDIS_URL", "http://h:1")], "REDIS_URL"),
            (&[("REDIS_URL", "redis://h:0")], "REDIS_URL"),
            (
                &[("REDIS_COMMAND_TIMEOUT_MS", "99999999999999999")],
                "REDIS_COMMAND_TIMEOUT_MS",
            ),
        ] {
            let err = env(vars).expect_err(name);
            assert_eq!(err.variable(), name, "{err}");
        }
        // an empty value is unset, for every variable
        assert_eq!(
            env(&[("REDIS_PORT", ""), ("REDIS_URL", " ")]),
            Ok(RedisConfig::default())
        );
    }

    #[test]
    fn should_never_show_the_password_in_debug() {
        let c = env(&[("REDIS_PASSWORD", "topsecret")]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{c:?}").contains("topsecret"));
        assert!(!format!("{c:#?}").contains("topsecret"));
        let c = RedisConfig::from_url("redis://:topsecret@h:1").unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{c:?}").contains("topsecret"));
        assert_eq!(format!("{}", Secret::new("topsecret")), "***");
    }

    #[test]
    fn should_want_both_client_certificate_files_or_neither() {
        for (vars, missing) in [
            (&[("REDIS_TLS_CERT_FILE", "/c.pem")], "REDIS_TLS_KEY_FILE"),
            (&[("REDIS_TLS_KEY_FILE", "/k.pem")], "REDIS_TLS_CERT_FILE"),
        ] {
            let err = env(vars).expect_err(missing);
            assert!(
                matches!(err, ConfigError::Missing { ref variable, .. } if variable == missing),
                "{err:?}"
            );
        }
        // both, without TLS: named, not silently ignored
        let err = env(&[
            ("REDIS_TLS_CERT_FILE", "/c.pem"),
            ("REDIS_TLS_KEY_FILE", "/k.pem"),
        ])
        .expect_err("client certificate without TLS");
        assert_eq!(err.variable(), "tls_client_cert", "{err}");
        // neither: no client certificate
        assert_eq!(env(&[]).map(|c| c.tls_client_cert), Ok(None));
    }
}

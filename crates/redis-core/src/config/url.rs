//! [`RedisConfig::from_url`]: the URL forms, checked as strictly as the
//! environment.

use fred::types::config::{Config as FredConfig, ServerConfig};

use super::{ConfigError, RedisConfig, Secret, Topology};

/// The schemes fred understands and we accept, with whether each uses TLS.
const SCHEMES: &[(&str, bool)] = &[
    ("redis", false),
    ("rediss", true),
    ("redis-cluster", false),
    ("rediss-cluster", true),
    ("redis-sentinel", false),
    ("rediss-sentinel", true),
];

impl RedisConfig {
    /// Parses a URL: `redis://[user[:password]@]host[:port][/db]`, `rediss://`
    /// (TLS), `redis-cluster://host:port?node=host:port&node=...` and
    /// `redis-sentinel://host:port[/db]?sentinelServiceName=NAME&node=host:port`
    /// (`rediss-cluster://`, `rediss-sentinel://` with TLS).
    ///
    /// The result passes [`validate`](Self::validate): an unknown scheme
    /// (`http://`), port 0 or an empty host is refused here, with the same
    /// typed error as the environment path gives.
    ///
    /// ```
    /// use aeturnis_redis_core::{RedisConfig, Topology};
    /// let config = RedisConfig::from_url("redis://:hunter2@10.0.0.5:6380/2")?;
    /// assert_eq!(config.database, Some(2));
    /// assert!(!format!("{config:?}").contains("hunter2"));
    /// assert!(RedisConfig::from_url("http://10.0.0.5:6380").is_err());
    /// assert!(RedisConfig::from_url("redis://10.0.0.5:0").is_err());
    /// # Ok::<(), aeturnis_redis_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `url`; the message never holds the
    /// password.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::parse_url("url", url)
    }

    pub(super) fn parse_url(variable: &str, url: &str) -> Result<Self, ConfigError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let Some(&(_, tls)) = SCHEMES.iter().find(|(s, _)| Some(*s) == scheme.as_deref()) else {
            let names: Vec<&str> = SCHEMES.iter().map(|(s, _)| *s).collect();
            return Err(ConfigError::invalid(
                variable,
                format!("the scheme must be one of {}://", names.join("://, ")),
            ));
        };
        #[cfg(not(feature = "tls"))]
        if tls {
            return Err(ConfigError::invalid(
                variable,
                "TLS URL given but aeturnis-redis-core was built without the `tls` feature",
            ));
        }
        let fred = FredConfig::from_url(url)
            .map_err(|e| ConfigError::invalid(variable, redact(e.details(), url)))?;
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
        let config = RedisConfig {
            topology,
            username: fred.username,
            password: fred.password.map(Secret::new),
            database: fred.database,
            tls,
            ..RedisConfig::default()
        };
        config.validate().map_err(|e| e.within(variable))?;
        Ok(config)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_every_url_form() {
        let c = RedisConfig::from_url("redis://user:pw@example.com:6380/3")
            .unwrap_or_else(|e| panic!("{e}"));
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

        let c = RedisConfig::from_url("redis-cluster://a:7000?node=b:7001&node=c:7002")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(c.topology, Topology::Cluster { nodes } if nodes.len() == 3));

        let c = RedisConfig::from_url(
            "redis-sentinel://s1:26379/1?sentinelServiceName=svc&node=s2:26380",
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
        for (url, why) in [
            ("redis://u:s3cr3tpw@host:notaport", "not a port"),
            ("redis-sentinel://h:1", "no service name"),
            ("http://x:s3cr3tpw@h:1", "unknown scheme"),
            ("ftp://h:1", "unknown scheme"),
            ("127.0.0.1:6379", "no scheme"),
            ("redis://h:0", "port 0"),
            ("redis://u:s3cr3tpw@h:0", "port 0"),
            ("redis-cluster://a:7000?node=b:0", "a node on port 0"),
        ] {
            let err = RedisConfig::from_url(url).expect_err(why);
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "url"),
                "{url}: {err:?}"
            );
            assert!(!err.to_string().contains("s3cr3tpw"), "{err}");
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn should_refuse_tls_urls_without_the_tls_feature() {
        let err = RedisConfig::from_url("rediss://h:6380").expect_err("no tls feature");
        assert!(err.to_string().contains("tls"), "{err}");
    }
}

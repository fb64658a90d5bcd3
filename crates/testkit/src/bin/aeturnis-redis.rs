//! `aeturnis-redis`: starts testkit topologies that outlive this process.
//!
//! `cargo xtask redis up`, `cargo xtask test` and `cargo xtask bench` run it so that the
//! topology code lives in one place (aeturnis-testkit):
//!
//! ```text
//! aeturnis-redis up [--topology standalone|redlock|cluster|sentinel|all[,...]] [--owner-pid PID]
//! ```
//!
//! It prints a JSON array on stdout, one object per topology:
//! `{"topology", "url", "env": {NAME: VALUE}, "servers": [{"pid", "port", "dir", "role"}]}`.
//! Without `--owner-pid` the servers are detached (their own process group, never
//! reaped); with it they are killed when that process exits.

#![allow(clippy::print_stdout)]

use aeturnis_testkit::{
    set_lifetime, Cluster, Lifetime, Masters, RedisServer, Sentinel, ServerRecord, CLUSTER_URL_ENV,
    REDLOCK_URLS_ENV, SENTINEL_URL_ENV, STANDALONE_URL_ENV,
};
use anyhow::{bail, Context};
use serde_json::{json, Value};

const TOPOLOGIES: [&str; 4] = ["standalone", "redlock", "cluster", "sentinel"];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("up") {
        bail!("usage: aeturnis-redis up [--topology standalone|redlock|cluster|sentinel|all[,...]] [--owner-pid PID]");
    }
    let mut wanted: Vec<String> = vec!["standalone".into()];
    let mut owner = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--topology" => {
                let list = args.next().context("--topology needs a value")?;
                wanted = list.split(',').map(str::to_owned).collect();
            }
            "--owner-pid" => {
                owner = Some(args.next().context("--owner-pid needs a pid")?.parse()?);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if wanted.iter().any(|t| t == "all") {
        wanted = TOPOLOGIES.iter().map(|t| (*t).to_owned()).collect();
    }
    if let Some(bad) = wanted.iter().find(|t| !TOPOLOGIES.contains(&t.as_str())) {
        bail!("unknown topology {bad:?}; expected one of {TOPOLOGIES:?} or all");
    }
    set_lifetime(owner.map_or(Lifetime::Detached, Lifetime::Owner))?;

    // Start everything in parallel; detach only when all came up, so a failure
    // leaves nothing behind.
    let started: Vec<anyhow::Result<Started>> = std::thread::scope(|scope| {
        let handles: Vec<_> = wanted
            .iter()
            .map(|t| scope.spawn(move || start(t)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a start thread panicked")))
            })
            .collect()
    });
    let started = started.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let out: Vec<Value> = started.into_iter().map(Started::detach).collect();
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

struct Started {
    topology: &'static str,
    url: String,
    env: Value,
    servers: Vec<RedisServer>,
}

impl Started {
    fn detach(self) -> Value {
        let servers: Vec<ServerRecord> =
            self.servers.into_iter().map(RedisServer::detach).collect();
        json!({
            "topology": self.topology,
            "url": self.url,
            "env": self.env,
            "servers": servers,
        })
    }
}

fn start(topology: &str) -> anyhow::Result<Started> {
    Ok(match topology {
        "standalone" => {
            let server = RedisServer::start_standalone()?;
            let url = server.url();
            Started {
                topology: "standalone",
                env: json!({ STANDALONE_URL_ENV: url }),
                url,
                servers: vec![server],
            }
        }
        "redlock" => {
            let masters = Masters::start(3)?;
            let url = masters.urls().join(",");
            Started {
                topology: "redlock",
                env: json!({ REDLOCK_URLS_ENV: url }),
                url,
                servers: masters.servers,
            }
        }
        "cluster" => {
            let cluster = Cluster::start()?;
            let url = cluster.url();
            Started {
                topology: "cluster",
                env: json!({ CLUSTER_URL_ENV: url }),
                url,
                servers: cluster.into_nodes(),
            }
        }
        "sentinel" => {
            let set = Sentinel::start()?;
            let url = set.url();
            Started {
                topology: "sentinel",
                env: json!({ SENTINEL_URL_ENV: url }),
                url,
                servers: set.into_servers(),
            }
        }
        other => bail!("unknown topology {other:?}"),
    })
}

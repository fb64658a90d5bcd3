//! `cargo xtask demo --load [--players N] [--seconds S] [--url U]`: simulated
//! players against a running demo, a progress bar, then a summary table.
//!
//! Each player logs in, then until the time is up picks one action at a time
//! (profile reads, chat, combat, trades, `GET /me`), waits a human think time
//! (300 to 900 ms, so a player alone stays near the `api` preset's 100 a
//! minute and some 429s show), and logs out. Against a loopback demo each
//! player connects from its own loopback address (`127.1.x.y`), so the per-IP
//! limits see N clients as a real crowd would, not one. Meanwhile each player
//! keeps a WebSocket open on `/ws` with its session ([`ws`]): moves at the
//! movement preset's rate (10 a second) and chat at the chat preset's (10 a
//! minute); the table adds the messages sent and received per second and the
//! error frames.

mod ws;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// The seeded players whose profiles the demo serves.
const SEEDED: [&str; 5] = ["alice", "bob", "carol", "dave", "eve"];

/// `--players`, `--seconds`, `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    players: u32,
    seconds: u64,
    url: String,
}

impl Options {
    /// Parses the arguments after `--load`; `default_url` is the demo's address.
    pub(crate) fn parse(args: &[String], default_url: &str) -> anyhow::Result<Options> {
        let mut options = Options {
            players: 20,
            seconds: 10,
            url: default_url.trim_end_matches('/').to_owned(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => iter
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match name {
                "--players" => options.players = positive(name, &value()?)?,
                "--seconds" => options.seconds = positive(name, &value()?)?.into(),
                "--url" => {
                    let url = value()?;
                    if !url.starts_with("http://") {
                        bail!("--url must be an http:// URL (got {url:?})");
                    }
                    options.url = url.trim_end_matches('/').to_owned();
                }
                other => bail!(
                    "unknown load option {other:?}; expected --players N, --seconds S, --url U"
                ),
            }
        }
        if options.players > 10_000 {
            bail!("--players is at most 10000 (got {})", options.players);
        }
        Ok(options)
    }
}

fn positive(name: &str, value: &str) -> anyhow::Result<u32> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{name} must be a whole number above 0 (got {value:?})"),
    }
}

/// Runs the load and prints the summary. Fails when the demo does not
/// answer `/health/ready` at all.
pub(crate) fn run(options: &Options) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let results = drive(options).await?;
        print!("{}", table(&results.routes, results.ws, results.elapsed));
        let probe = Player::new(0, options, Results::default());
        let health = probe
            .call("probe", "GET", "/health/detailed", None)
            .await
            .body;
        let sample = probe
            .call("probe", "GET", "/dashboard/sample", None)
            .await
            .body;
        println!("{}", after_the_run(&health, &sample));
        Ok(ExitCode::SUCCESS)
    })
}

/// What a run measured.
struct Summary {
    routes: BTreeMap<&'static str, Route>,
    ws: ws::WsFigures,
    elapsed: Duration,
}

/// Figures of one route.
#[derive(Debug, Default, Clone)]
struct Route {
    latencies: Vec<Duration>,
    ok: u64,
    limited: u64,
    failed: u64,
}

type Results = Arc<Mutex<BTreeMap<&'static str, Route>>>;

/// One player's HTTP client, from its own loopback address when the demo
/// is on loopback.
struct Player {
    client: Client<HttpConnector, Full<bytes::Bytes>>,
    base: String,
    /// The loopback address it connects from, when the demo is on loopback.
    local: Option<IpAddr>,
    token: Option<String>,
    results: Results,
    rng: u64,
}

/// What one call gave: the status (0 when the connection failed) and the body.
struct Answer {
    status: u16,
    body: Value,
}

impl Player {
    fn new(index: u32, options: &Options, results: Results) -> Player {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let local = is_loopback(&options.url).then(|| loopback_for(index));
        connector.set_local_address(local);
        Player {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: options.url.clone(),
            local,
            token: None,
            results,
            rng: 0x9E37_79B9_7F4A_7C15 ^ u64::from(index).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        }
    }

    /// A pseudo-random number below `n` (SplitMix64: spreads the actions,
    /// nothing depends on its quality).
    fn below(&mut self, n: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }

    async fn call(
        &self,
        route: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                body.to_string()
            }
            None => String::new(),
        };
        let started = Instant::now();
        let answer = match request.body(Full::new(bytes::Bytes::from(payload))) {
            Ok(request) => match self.client.request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
                    Answer {
                        status: if bytes.is_ok() { status } else { 0 },
                        body: bytes
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or(Value::Null),
                    }
                }
                Err(_) => Answer {
                    status: 0,
                    body: Value::Null,
                },
            },
            Err(_) => Answer {
                status: 0,
                body: Value::Null,
            },
        };
        let elapsed = started.elapsed();
        if let Ok(mut results) = self.results.lock() {
            let entry = results.entry(route).or_default();
            entry.latencies.push(elapsed);
            match answer.status {
                200..=299 => entry.ok += 1,
                429 => entry.limited += 1,
                _ => entry.failed += 1,
            }
        }
        answer
    }

    /// Logs in, plays (HTTP and WebSocket side by side) until `until`, logs out.
    async fn play(
        mut self,
        index: u32,
        players: u32,
        until: Instant,
        sockets: Arc<ws::WsCounters>,
    ) {
        let name = format!("load-{index}");
        let login = self
            .call(
                "POST /auth/login",
                "POST",
                "/auth/login",
                Some(json!({ "user": name })),
            )
            .await;
        self.token = login.body["token"].as_str().map(str::to_owned);
        let phase = self.below(1000) as f64 / 1000.0;
        let (base, local, token) = (self.base.clone(), self.local, self.token.clone());
        let socket = async {
            if let Some(token) = token {
                ws::play(&base, local, &token, &name, phase, until, sockets).await;
            }
        };
        let requests = async {
            while Instant::now() < until {
                self.act(&name, index, players).await;
                let think = Duration::from_millis(300 + self.below(600));
                tokio::time::sleep(think.min(until.saturating_duration_since(Instant::now())))
                    .await;
            }
        };
        tokio::join!(socket, requests);
        if self.token.is_some() {
            self.call("POST /auth/logout", "POST", "/auth/logout", None)
                .await;
        }
    }

    /// One action, picked by weight (profile reads most often).
    async fn act(&mut self, name: &str, index: u32, players: u32) {
        let seeded = SEEDED[usize::try_from(self.below(SEEDED.len() as u64)).unwrap_or(0)];
        let roll = self.below(100);
        if self.token.is_none() || roll < 40 {
            let path = format!("/players/{seeded}/profile");
            self.call("GET /players/{id}/profile", "GET", &path, None)
                .await;
            return;
        }
        let other = if players > 1 {
            let pick = u32::try_from(self.below(u64::from(players - 1))).unwrap_or(0);
            format!("load-{}", if pick >= index { pick + 1 } else { pick })
        } else {
            seeded.to_owned()
        };
        match roll {
            40..=54 => {
                let message = json!({ "message": format!("{name} says hi to {other}") });
                self.call("POST /chat", "POST", "/chat", Some(message))
                    .await;
            }
            55..=64 => {
                self.call("GET /chat", "GET", "/chat", None).await;
            }
            65..=84 => {
                let damage = 1 + self.below(50);
                let action = json!({ "target": other, "damage": damage });
                self.call(
                    "POST /combat/action",
                    "POST",
                    "/combat/action",
                    Some(action),
                )
                .await;
            }
            85..=94 => {
                let trade = json!({ "with": other, "item": "potion" });
                self.call("POST /trade", "POST", "/trade", Some(trade))
                    .await;
            }
            _ => {
                self.call("GET /me", "GET", "/me", None).await;
            }
        }
    }
}

/// `http://127.x.y.z...` or `http://localhost...`.
fn is_loopback(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `127.1.x.y` for player `index` (distinct for 65 000 players).
fn loopback_for(index: u32) -> IpAddr {
    let [_, _, hi, lo] = (index % 65_000).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1, hi, lo.max(1)))
}

async fn drive(options: &Options) -> anyhow::Result<Summary> {
    let probe = Player::new(0, options, Results::default());
    let ready = probe.call("probe", "GET", "/health/ready", None).await;
    if ready.status == 0 {
        bail!(
            "no demo answers at {} (start one with `cargo xtask demo`, or pass --url)",
            options.url
        );
    }
    println!(
        "==> {} players for {} s against {} (HTTP and /ws)",
        options.players, options.seconds, options.url
    );
    let results = Results::default();
    let sockets = Arc::new(ws::WsCounters::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..options.players {
        let player = Player::new(index, options, results.clone());
        tasks.spawn(player.play(index, options.players, until, sockets.clone()));
    }
    let bar = progress(options.seconds)?;
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let total: usize = results
            .lock()
            .map(|r| r.values().map(|r| r.latencies.len()).sum())
            .unwrap_or(0);
        let elapsed = started.elapsed();
        bar.set_position(elapsed.as_millis().try_into().unwrap_or(u64::MAX));
        let seconds = elapsed.as_secs_f64().max(0.001);
        let ws = sockets.figures();
        bar.set_message(format!(
            "{total} requests, {:.0}/s; {} messages sent, {:.0}/s",
            total as f64 / seconds,
            ws.sent,
            ws.sent as f64 / seconds
        ));
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let routes = results.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Summary {
        routes,
        ws: sockets.figures(),
        elapsed,
    })
}

fn progress(seconds: u64) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(seconds * 1000);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
    )?);
    Ok(bar)
}

/// The `q` quantile (nearest rank) of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// The summary table: one row per route, the total, then the WebSocket rows.
fn table(
    results: &BTreeMap<&'static str, Route>,
    sockets: ws::WsFigures,
    elapsed: Duration,
) -> String {
    use std::fmt::Write;
    let seconds = elapsed.as_secs_f64().max(0.001);
    let mut out = format!(
        "{:<28} {:>9} {:>8} {:>9} {:>9} {:>7} {:>6} {:>7}\n",
        "route", "requests", "req/s", "p50 ms", "p99 ms", "2xx", "429", "other"
    );
    let mut all = Route::default();
    let mut row = |name: &str, route: &Route| {
        let mut sorted = route.latencies.clone();
        sorted.sort_unstable();
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>8.1} {:>9.2} {:>9.2} {:>7} {:>6} {:>7}",
            name,
            sorted.len(),
            sorted.len() as f64 / seconds,
            quantile_ms(&sorted, 0.50),
            quantile_ms(&sorted, 0.99),
            route.ok,
            route.limited,
            route.failed
        );
    };
    for (name, route) in results {
        row(name, route);
        all.latencies.extend_from_slice(&route.latencies);
        all.ok += route.ok;
        all.limited += route.limited;
        all.failed += route.failed;
    }
    row("all", &all);
    out + &ws::rows(sockets, seconds)
}

/// Cache hit rate from `/health/detailed`, write-behind lag (moves
/// acknowledged, not yet in SQLite) from the dashboard's `/dashboard/sample`.
fn after_the_run(health: &Value, sample: &Value) -> String {
    let checks = &health["checks"];
    let hit_rate = checks["cache:stats"][0]["observedValue"]["hit_rate"]
        .as_f64()
        .map_or_else(|| "n/a".to_owned(), |r| format!("{:.1} %", r * 100.0));
    let write_behind = &sample["write_behind"];
    let write_behind = match (
        write_behind["lag"].as_u64(),
        write_behind["dead_letters"].as_u64(),
    ) {
        (Some(lag), Some(dead)) => format!("{lag} moves not yet in SQLite, {dead} dead letters"),
        _ => "n/a (the demo did not report it)".to_owned(),
    };
    format!("cache hit rate: {hit_rate}\nwrite-behind at the end: {write_behind}")
}

#[cfg(test)]
mod tests;

//! `cargo xtask demo --load [--players N] [--seconds S] [--url U]`: simulated
//! players against a running demo, a progress bar, then a summary table.
//!
//! Each player logs in, then until the time is up picks one action at a time
//! (profile reads, chat, combat, trades, `GET /me`), waits a human think time
//! (300 to 900 ms, so a player alone stays near the `api` preset's 100 a
//! minute and some 429s show), and logs out. Against a loopback demo each
//! player connects from its own loopback address (`127.1.x.y`), so the per-IP
//! limits see N clients as a real crowd would, not one.
//!
//! WebSocket moves are not driven: the demo has no `/ws` yet (HTTP only).

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
        print!("{}", table(&results.routes, results.elapsed));
        let probe = Player::new(0, options, Results::default());
        let health = probe
            .call("probe", "GET", "/health/detailed", None)
            .await
            .body;
        println!("{}", after_the_run(&health));
        Ok(ExitCode::SUCCESS)
    })
}

/// What a run measured.
struct Summary {
    routes: BTreeMap<&'static str, Route>,
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
        if is_loopback(&options.url) {
            connector.set_local_address(Some(loopback_for(index)));
        }
        Player {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: options.url.clone(),
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

    /// Logs in, plays until `until`, logs out.
    async fn play(mut self, index: u32, players: u32, until: Instant) {
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
        while Instant::now() < until {
            self.act(&name, index, players).await;
            let think = Duration::from_millis(300 + self.below(600));
            tokio::time::sleep(think.min(until.saturating_duration_since(Instant::now()))).await;
        }
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
        "==> {} players for {} s against {} (HTTP only: the demo has no /ws yet)",
        options.players, options.seconds, options.url
    );
    let results = Results::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..options.players {
        let player = Player::new(index, options, results.clone());
        tasks.spawn(player.play(index, options.players, until));
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
        bar.set_message(format!(
            "{total} requests, {:.0}/s",
            total as f64 / elapsed.as_secs_f64().max(0.001)
        ));
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let routes = results.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Summary { routes, elapsed })
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

/// The summary table: one row per route, then the total.
fn table(results: &BTreeMap<&'static str, Route>, elapsed: Duration) -> String {
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
    out
}

/// Cache hit rate and write-behind lag from `/health/detailed`.
fn after_the_run(health: &Value) -> String {
    let checks = &health["checks"];
    let hit_rate = checks["cache:stats"][0]["observedValue"]["hit_rate"]
        .as_f64()
        .map_or_else(|| "n/a".to_owned(), |r| format!("{:.1} %", r * 100.0));
    let write_behind = checks
        .as_object()
        .and_then(|c| c.iter().find(|(k, _)| k.contains("write")))
        .map_or_else(
            || "n/a (the demo has no write-behind queue yet)".to_owned(),
            |(_, v)| v[0]["observedValue"].to_string(),
        );
    format!("cache hit rate: {hit_rate}\nwrite-behind at the end: {write_behind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn should_parse_options_with_defaults() {
        let o = Options::parse(&[], "http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (o.players, o.seconds, o.url.as_str()),
            (20, 10, "http://127.0.0.1:8080")
        );
        let o = Options::parse(
            &args(&[
                "--players",
                "5",
                "--seconds=3",
                "--url",
                "http://localhost:9000",
            ]),
            "http://x",
        )
        .unwrap();
        assert_eq!(
            (o.players, o.seconds, o.url.as_str()),
            (5, 3, "http://localhost:9000")
        );
    }

    #[test]
    fn should_refuse_bad_options() {
        for bad in [
            &["--players", "0"][..],
            &["--players", "ten"],
            &["--seconds"],
            &["--url", "https://x"],
            &["--turbo"],
            &["--players", "10001"],
        ] {
            assert!(Options::parse(&args(bad), "http://x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn should_take_nearest_rank_quantiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((quantile_ms(&ms, 0.5) - 50.0).abs() < 1e-9);
        assert!((quantile_ms(&ms, 0.99) - 99.0).abs() < 1e-9);
        assert!((quantile_ms(&ms[..1], 0.99) - 1.0).abs() < 1e-9);
        assert!(quantile_ms(&[], 0.5).abs() < 1e-9);
    }

    /// A stand-in for the demo: answers every request `200 {"token":"t"}`
    /// and closes the connection; counts the requests.
    async fn stub_demo() -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // the head, then as many body bytes as content-length says
                    loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let body = r#"{"token":"t"}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, served)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn should_drive_every_player_for_the_given_time() {
        let (url, served) = stub_demo().await;
        let options = Options::parse(&args(&["--players", "4", "--seconds", "2"]), &url).unwrap();
        let started = Instant::now();
        let summary = drive(&options).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let routes = &summary.routes;
        assert_eq!(routes["POST /auth/login"].ok, 4, "one login per player");
        assert_eq!(routes["POST /auth/logout"].ok, 4, "one logout per player");
        let total: u64 = routes.values().map(|r| r.ok).sum();
        // the probe, then at least one action per player beyond login and logout
        assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), total + 1);
        assert!(total >= 4 * 3, "{total} requests");
        assert!(routes.values().all(|r| r.limited == 0 && r.failed == 0));
        let text = table(routes, summary.elapsed);
        assert!(text.lines().last().unwrap().starts_with("all "), "{text}");
    }

    #[tokio::test]
    async fn should_refuse_to_run_without_a_demo() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = Options::parse(&[], &format!("http://127.0.0.1:{port}")).unwrap();
        let error = drive(&options).await.err().unwrap();
        assert!(error.to_string().contains("no demo answers"), "{error}");
    }

    #[test]
    fn should_give_each_player_its_own_loopback_address() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost:8080/"));
        assert!(!is_loopback("http://10.0.0.1:8080"));
        assert_ne!(loopback_for(1), loopback_for(2));
        assert_ne!(loopback_for(0), loopback_for(256));
        assert!(matches!(loopback_for(7), IpAddr::V4(ip) if ip.is_loopback()));
    }
}

//! `/dashboard` in a real headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini): the page loads with its own assets only and
//! no script error, its figures follow the traffic the test sends, and a
//! screenshot lands in `target/tmp/dashboard.png`.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver`, which `cargo xtask test` and `cargo xtask ci` install
//! when missing; run outside xtask without them, the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aeturnis_demo::{app, AppState, DemoConfig};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::{eventually, TestCtx};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use tower::ServiceExt;

/// What the page shows, read in one script call.
const READ_PAGE: &str = r#"
const t = (id) => document.getElementById(id).textContent;
const auth = document.querySelector('tr[data-preset="auth"] .checks');
return {
  samples: Number(document.body.dataset.samples),
  errors: window.aeturnisDashboard ? window.aeturnisDashboard.errors : ["dashboard.js did not run"],
  errorBox: document.getElementById("js-errors").hidden ? "" : t("js-errors"),
  background: getComputedStyle(document.body).backgroundColor,
  foreign: performance.getEntriesByType("resource").map((r) => r.name)
    .filter((n) => !n.startsWith(location.origin)),
  status: t("status-text"),
  latency: t("redis-latency"),
  memory: t("redis-memory"),
  hits: t("cache-hits"),
  misses: t("cache-misses"),
  hitsLabel: t("cache-hits-label"),
  missesLabel: t("cache-misses-label"),
  sessions: t("sessions-active"),
  users: t("sessions-users"),
  locks: t("locks-acquired"),
  handOffs: t("locks-hand-offs"),
  authChecks: auth ? auth.textContent : null,
  sparklines: document.querySelectorAll("svg.spark polyline").length,
};
"#;

#[tokio::test]
async fn should_show_live_figures_that_follow_the_traffic_without_script_errors(
) -> anyhow::Result<()> {
    let (driver, chromium) = browser_binaries();
    let ctx = TestCtx::standalone("demo_dashboard").await;
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let state = AppState::new(redis, DemoConfig::defaults()?)?;
    let router = app(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let served = router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, served).await });

    let driver = ChromeDriver::start(&driver)?;
    let browser = driver.session(&chromium).await?;
    // end the session (and its Chromium) whatever happened, then report
    let checked = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(check_page(
        &browser, &state, &router, &base,
    )))
    .await;
    let closed = browser.close().await;
    match checked {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    closed?;
    Ok(())
}

/// The page: first sample, then the figures after traffic, then a screenshot.
async fn check_page(
    browser: &Client,
    state: &AppState,
    router: &Router,
    base: &str,
) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/dashboard")).await?;

    // the first sample arrives and is drawn, before any traffic
    let first = eventually(
        "the first sample on the page",
        Duration::from_secs(10),
        || read(browser, |page| page["samples"].as_u64() >= Some(1)),
    )
    .await?;
    assert_no_errors(&first);
    assert_eq!(first["foreign"], json!([]), "only the demo's own assets");
    assert_eq!(
        first["background"], "rgb(15, 20, 32)",
        "dashboard.css applied"
    );
    assert!(
        first["status"].as_str().unwrap().starts_with("live"),
        "{first}"
    );
    assert!(
        first["latency"].as_str().unwrap().ends_with(" ms"),
        "{first}"
    );
    assert!(first["memory"].as_str().unwrap().ends_with("iB"), "{first}");
    assert_eq!(first["hits"], "0");
    assert_eq!(
        (first["hitsLabel"].as_str(), first["missesLabel"].as_str()),
        (Some("hits"), Some("misses"))
    );
    assert_eq!(first["sessions"], "0");
    assert_eq!(first["locks"], "0");
    assert_eq!(first["handOffs"], "0");
    assert_eq!(first["authChecks"], "0");

    // traffic: two logins, a miss then two hits, one trade (one lock), one
    // hand-off
    let alice = login(router, "alice").await;
    login(router, "bob").await;
    for _ in 0..3 {
        let (status, _) = send(router, Method::GET, "/players/eve/profile", None, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let trade = json!({ "with": "bob", "item": "sword" });
    let (status, body) = send(router, Method::POST, "/trade", Some(&alice), Some(trade)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // and two acquisitions contending on the demo's lock manager: the
    // release hands the lock to the waiting one (two more locks, one hand-off)
    let locks = state.locks();
    let held = locks
        .acquire("dashboard-test", Duration::from_secs(10))
        .await?;
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move {
            let guard = locks
                .acquire("dashboard-test", Duration::from_secs(10))
                .await?;
            guard.release().await
        }
    });
    eventually(
        "the second acquisition waits",
        Duration::from_secs(5),
        || {
            let waits = locks.stats().waits;
            async move {
                if waits == 1 {
                    Ok(())
                } else {
                    Err(format!("{waits} waits"))
                }
            }
        },
    )
    .await?;
    held.release().await?;
    waiter.await??;

    let after = eventually(
        "the page showing the traffic",
        Duration::from_secs(10),
        || {
            read(browser, |page| {
                page["hits"] == "2"
                    && page["misses"] == "1"
                    && page["sessions"] == "2"
                    && page["users"] == "2"
                    && page["locks"] == "3"
                    && page["handOffs"] == "1"
                    && page["authChecks"] == "2"
            })
        },
    )
    .await?;
    assert_no_errors(&after);
    assert_eq!(
        (after["hitsLabel"].as_str(), after["missesLabel"].as_str()),
        (Some("hits"), Some("miss")),
        "2 hits, 1 miss"
    );

    // a few more samples, so the sparklines have a history in the screenshot
    let samples = after["samples"].as_u64().unwrap();
    let last = eventually("two more samples", Duration::from_secs(10), || {
        read(browser, move |page| {
            page["samples"].as_u64() >= Some(samples + 2)
        })
    })
    .await?;
    assert_no_errors(&last);
    assert!(last["sparklines"].as_u64().unwrap() >= 4, "{last}");
    let png = browser.screenshot().await?;
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png)?;
    #[allow(clippy::print_stdout)] // where to look, for whoever runs the test
    {
        println!("screenshot: {}", shot.display());
    }
    assert_eq!(&png[1..4], b"PNG");
    Ok(())
}

#[tokio::test]
async fn should_serve_the_page_with_its_own_assets_and_a_sample_feed() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("demo_dashboard_feed").await;
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let router = app(AppState::new(redis, DemoConfig::defaults()?)?);
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/dashboard.js", "text/javascript"),
    ] {
        let response = router.clone().oneshot(get(path)).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(
            headers[header::CONTENT_TYPE].to_str()?.starts_with(kind),
            "{path}"
        );
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; img-src 'self' data:; connect-src 'self'"
        );
    }
    login(&router, "alice").await;
    send(&router, Method::GET, "/players/eve/profile", None, None).await;
    let (status, sample) = send(&router, Method::GET, "/dashboard/sample", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sample["redis"]["healthy"], true, "{sample}");
    assert!(
        sample["redis"]["latency_ms"].as_f64().unwrap() > 0.0,
        "{sample}"
    );
    assert!(
        sample["redis"]["used_memory"].as_u64().unwrap() > 0,
        "{sample}"
    );
    assert_eq!(sample["cache"]["misses"], 1, "{sample}");
    assert_eq!(sample["sessions"]["active"], 1, "{sample}");
    assert_eq!(sample["limiters"][0]["preset"], "auth", "{sample}");
    assert_eq!(sample["limiters"][0]["checks"], 1, "{sample}");
    assert_eq!(sample["write_behind"]["dead_letters"], 0, "{sample}");

    // the feed: an event stream whose first event is a sample, sent at once
    let response = router.clone().oneshot(get("/dashboard/feed")).await?;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    let first = tokio::time::timeout(Duration::from_secs(2), futures::StreamExt::next(&mut body))
        .await?
        .unwrap()?;
    let text = String::from_utf8(first.to_vec())?;
    let data = text
        .strip_prefix("event: sample\ndata: ")
        .unwrap_or_else(|| panic!("not a sample event: {text:?}"));
    let event: Value = serde_json::from_str(data.trim_end())?;
    assert_eq!(event["sessions"]["active"], 1, "{event}");
    Ok(())
}

fn get(path: &str) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// Runs [`READ_PAGE`]; `Ok` with the figures once `ready` accepts them.
async fn read(browser: &Client, ready: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let page = browser
        .execute(READ_PAGE, vec![])
        .await
        .map_err(|e| format!("script failed: {e}"))?;
    if ready(&page) {
        Ok(page)
    } else {
        Err(format!("not yet: {page}"))
    }
}

fn assert_no_errors(page: &Value) {
    assert_eq!(
        page["errors"],
        json!([]),
        "script errors on the page: {page}"
    );
    assert_eq!(page["errorBox"], "", "{page}");
}

/// Logs `user` in; the session token.
async fn login(router: &Router, user: &str) -> String {
    let (status, body) = send(
        router,
        Method::POST,
        "/auth/login",
        None,
        Some(json!({ "user": user })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// One request in-process, on the state the served page reads.
async fn send(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// chromedriver and chromium from `PATH`, or a failure naming the fix.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("chromedriver"), find("chromium")) {
        (Some(driver), Some(chromium)) => (driver, chromium),
        (driver, chromium) => panic!(
            "the dashboard test needs Chromium and chromedriver (found chromedriver: {driver:?}, \
             chromium: {chromium:?}). Run it through `cargo xtask test -p aeturnis-demo` or \
             `cargo xtask ci`, which install Debian's chromium and chromium-driver when missing \
             (or install them yourself: apt-get install chromium chromium-driver)"
        ),
    }
}

/// A chromedriver on a free loopback port, killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    fn start(binary: &Path) -> anyhow::Result<ChromeDriver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromedriver-{port}.log"));
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    /// A headless Chromium session (waits for chromedriver to listen).
    async fn session(&self, chromium: &Path) -> anyhow::Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                ],
            }),
        );
        let within = Duration::from_secs(20);
        eventually("a chromedriver session", within, || {
            let caps = caps.clone();
            async move {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&self.url)
                    .await
                    .map_err(|e| {
                        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                        let tail: String =
                            log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                        format!("{e} (chromedriver log, last lines first:\n{tail})")
                    })
            }
        })
        .await
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The HTTP endpoints over a real socket with a real HTTP client: the metrics exposition parses
//! and carries every family, probes follow start-up, status and shutdown, the JSON views answer,
//! the chaos controls work with the admin token and only with it (no forged cross-site
//! request gets through), and idle, slow and too many clients are cut off in bounded time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::health::HealthConfig;
use resilience_control::metering::{JsonlSink, MeteringConfig, MeteringFlusher};
use resilience_control::{ControlDriver, ControlPlane, http};
use resilience_core::chaos::{ErrorCode, FaultTable};
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
use resilience_core::{BreakerRegistry, CircuitBreaker};
use serde_json::Value;
use support::TempDir;
use tokio_util::sync::CancellationToken;

struct Rig {
    url: String,
    control: ControlPlane,
    driver: Option<ControlDriver>,
    registry: Arc<BreakerRegistry>,
    table: Arc<FaultTable>,
    ring: Arc<MeterRing>,
    stop: CancellationToken,
    _dir: TempDir,
}

/// The admin token the rig's server requires.
const TOKEN: &str = "test-admin-token-0123456789";

async fn rig() -> Rig {
    rig_with(http::HttpConfig::default().admin_token(http::AdminToken::new(TOKEN).unwrap())).await
}

async fn rig_with(http_config: http::HttpConfig) -> Rig {
    let dir = TempDir::new("http");
    let registry = Arc::new(BreakerRegistry::new());
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let engine = ChaosEngine::builder(table.clone())
        .breakers(registry.clone())
        .config(ChaosConfig::default().enabled(true))
        .build()
        .unwrap();
    let ring = Arc::new(MeterRing::with_capacity(1024).unwrap());
    let flusher = MeteringFlusher::open(
        ring.clone(),
        Arc::new(JsonlSink::new(dir.0.join("usage.jsonl"))),
        MeteringConfig::default()
            .spool_dir(dir.0.join("spool"))
            .flush_interval(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    let (control, driver) = ControlPlane::builder()
        .registry(registry.clone())
        .health(HealthConfig::default().interval(Duration::from_millis(20)))
        .chaos(engine)
        .metering(flusher)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(http::serve_with(
        listener,
        control.clone(),
        http_config,
        stop.clone(),
    ));
    Rig {
        url,
        control,
        driver: Some(driver),
        registry,
        table,
        ring,
        stop,
        _dir: dir,
    }
}

impl Rig {
    fn start(&mut self) {
        tokio::spawn(self.driver.take().unwrap());
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path).await;
        (status, serde_json::from_str(&body).unwrap())
    }

    /// `POST path` with the token and `body`.
    async fn post_json(&self, path: &str, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .bearer_auth(TOKEN)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// A state-changing request as the CLI sends it: the token, and a JSON body.
    async fn send(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        self.send_as(method, path, Some(TOKEN), "application/json", None)
            .await
    }

    async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        origin: Option<&str>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body("{}");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header(reqwest::header::ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn until(&self, what: &str, path: &str, status: u16) {
        for _ in 0..500 {
            if self.get(path).await.0 == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: {path} never answered {status}");
    }
}

/// A metric name, its sorted labels, and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample of the exposition, as (name, labels, value); panics on a line that does not
/// parse, so a malformed exposition fails the test.
fn scrape(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).unwrap();
    let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        parsed.samples.len(),
        sample_lines,
        "every sample line parses"
    );
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("unexpected {other:?}"),
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            (s.metric, labels, value)
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

fn fail(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        if let Ok(permit) = breaker.try_acquire() {
            permit.failure();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_startup_status_and_shutdown() {
    let mut r = rig().await;
    let db = r.registry.breaker("db").unwrap();
    // Before the loops run: alive (nothing failed) but not started, so not ready.
    assert_eq!(r.get("/health/startup").await.0, 503);
    assert_eq!(r.get("/health/ready").await.0, 503);
    r.start();
    r.until("start-up", "/health/startup", 200).await;
    let (status, body) = r.json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "HEALTHY");
    assert_eq!(body["governance"], "cdd01ef066bc6cf2");
    assert_eq!(r.get("/health/live").await.0, 200);

    // The only breaker opens: score 0, CRITICAL, not ready; still live.
    fail(&db, 5);
    r.until("not ready when CRITICAL", "/health/ready", 503)
        .await;
    let (_, body) = r.json("/health/ready").await;
    assert_eq!(body["status"], "CRITICAL");
    assert_eq!(r.get("/health/live").await.0, 200);
    db.reset();
    r.until("ready again", "/health/ready", 200).await;

    r.control.shutdown().await.unwrap();
    assert_eq!(r.get("/health/live").await.0, 503);
    assert_eq!(r.get("/health/ready").await.0, 503);
    r.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_every_family_and_parse() {
    let mut r = rig().await;
    r.start();
    let db = r.registry.breaker("db").unwrap();
    let cache = r.registry.breaker("cache").unwrap();
    for _ in 0..7 {
        db.try_acquire().unwrap().success();
    }
    fail(&db, 5); // opens
    assert!(db.try_acquire().is_err());
    cache.try_acquire().unwrap().success();
    let point = r.table.point("search").unwrap();
    r.control
        .chaos()
        .unwrap()
        .inject_errors("search", 1.0, ErrorCode(503))
        .start()
        .unwrap();
    for _ in 0..4 {
        assert!(r.table.check(point).is_some());
    }
    for i in 0..3 {
        let event =
            UsageEvent::new("tenant", "agent", Operation::AgentMessage, Tier::Standard).unwrap();
        r.ring.record(event.tokens(i)).unwrap();
    }
    r.until("start-up", "/health/startup", 200).await;
    // Let the event pump see the transition and the flusher write the events.
    for _ in 0..200 {
        let l = r.control.metering().unwrap().ledger();
        if l.flushed == 3 && !r.control.transitions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let response = reqwest::get(format!("{}/metrics", r.url)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let s = scrape(&text);

    assert_eq!(
        value(
            &s,
            "resilience_governance",
            &[("constitutional_hash", "cdd01ef066bc6cf2")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_state",
            &[("breaker", "db"), ("state", "OPEN")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_state",
            &[("breaker", "db"), ("state", "CLOSED")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_state",
            &[("breaker", "cache"), ("state", "CLOSED")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_calls_total",
            &[("breaker", "db"), ("outcome", "success")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_calls_total",
            &[("breaker", "db"), ("outcome", "failure")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_rejections_total",
            &[("breaker", "db")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_breaker_transitions_total",
            &[("breaker", "db"), ("from", "CLOSED"), ("to", "OPEN")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "resilience_breaker_events_dropped_total", &[]),
        0.0
    );
    assert_eq!(value(&s, "resilience_health_score", &[]), 0.5);
    assert_eq!(
        value(&s, "resilience_health_status", &[("status", "DEGRADED")]),
        1.0
    );
    assert!(value(&s, "resilience_health_samples_total", &[]) >= 1.0);
    assert_eq!(value(&s, "resilience_recovery_attempts_total", &[]), 0.0);
    assert_eq!(
        value(
            &s,
            "resilience_recovery_outcomes_total",
            &[("outcome", "succeeded")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_chaos_injections_total",
            &[("kind", "ERROR")]
        ),
        4.0
    );
    assert_eq!(value(&s, "resilience_chaos_active_scenarios", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "resilience_chaos_scenarios_total",
            &[("event", "started")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_metering_events_total",
            &[("stage", "offered")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_metering_events_total",
            &[("stage", "accepted")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "resilience_metering_events_total",
            &[("stage", "flushed")]
        ),
        3.0
    );
    assert_eq!(
        value(&s, "resilience_metering_backlog", &[("stage", "pending")]),
        0.0
    );
    assert!(text.contains("# HELP resilience_breaker_state "), "{text}");
    assert!(
        text.contains("# TYPE resilience_breaker_calls counter"),
        "{text}"
    );
    r.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_views_and_chaos_controls() {
    let mut r = rig().await;
    r.start();
    let db = r.registry.breaker("db").unwrap();
    db.try_acquire().unwrap().success();
    r.until("start-up", "/health/startup", 200).await;

    let (status, health) = r.json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "HEALTHY");
    assert_eq!(health["governance"], "cdd01ef066bc6cf2");
    let (_, breakers) = r.json("/breakers").await;
    assert_eq!(breakers["breakers"][0]["name"], "db");
    assert_eq!(breakers["breakers"][0]["state"], "CLOSED");
    assert_eq!(breakers["breakers"][0]["successes"], 1);
    let (status, check) = r.json("/breakers/health").await;
    assert_eq!(status, 200);
    assert_eq!(check["healthy"], true);
    assert_eq!(check["breakers"][0]["status"], "HEALTHY");
    assert_eq!(check["constitutional_hash"], "cdd01ef066bc6cf2");
    let (status, recovery) = r.json("/recovery").await;
    assert_eq!(status, 200);
    assert!(recovery["services"].is_array());
    let (status, metering) = r.json("/metering").await;
    assert_eq!(status, 200);
    assert_eq!(metering["sink"], "jsonl");
    assert_eq!(metering["ledger"]["refused_full"], 0);

    let (_, idle) = r.get("/chaos").await;
    assert!(!idle.contains("-0"), "no negative zero in JSON: {idle}");

    let engine = r.control.chaos().unwrap();
    engine
        .partition("db")
        .duration(Duration::from_secs(60))
        .start()
        .unwrap();
    engine.force_circuit_open("db").start().unwrap();
    let (_, chaos) = r.json("/chaos").await;
    let active = chaos["active"].as_array().unwrap();
    assert_eq!(active.len(), 2);
    let cut = active
        .iter()
        .find(|a| a["name"] == "network_partition:db")
        .unwrap();
    assert_eq!(cut["kind"], "NETWORK_PARTITION");
    assert!(cut["remaining_ms"].as_u64().unwrap() > 55_000);
    assert_eq!(chaos["metrics"]["enabled"], true);

    let (status, ended) = r
        .send(reqwest::Method::DELETE, "/chaos/network_partition:db")
        .await;
    assert_eq!(status, 200, "{ended}");
    let (status, missing) = r.send(reqwest::Method::DELETE, "/chaos/nothing-here").await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("nothing-here"));

    let (status, stop) = r.send(reqwest::Method::POST, "/chaos/stop").await;
    assert_eq!(status, 200);
    assert_eq!(stop["stopped"]["scenarios"], 1);
    assert_eq!(stop["stopped"]["breakers_restored"], 1);
    assert_eq!(db.state(), resilience_core::State::Closed);
    let (_, chaos) = r.json("/chaos").await;
    assert_eq!(chaos["metrics"]["stopped"], true);
    assert!(
        engine.partition("db").start().is_err(),
        "stopped until resumed"
    );
    let (status, _) = r.send(reqwest::Method::POST, "/chaos/resume").await;
    assert_eq!(status, 200);
    engine.partition("db").start().unwrap();
    r.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_is_injected_on_one_instance_with_typed_refusals() {
    let mut r = rig().await;
    r.start();
    let (status, _) = r
        .send_as(
            reqwest::Method::POST,
            "/chaos",
            None,
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 401, "no token, no scenario");
    assert!(r.control.chaos().unwrap().active().is_empty());
    let (status, started) = r
        .post_json(
            "/chaos",
            r#"{"name": "slow-db", "target": "db", "fault": {"kind": "latency", "ms": 200}, "duration_ms": 30000}"#,
        )
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["started"], "slow-db");
    assert_eq!(started["governance"], "cdd01ef066bc6cf2");
    let point = r.table.point("db").unwrap();
    assert_eq!(
        r.table.check(point),
        Some(resilience_core::chaos::Fault::Latency(
            Duration::from_millis(200)
        ))
    );
    let engine = r.control.chaos().unwrap();
    let active = engine.active();
    assert_eq!(active.len(), 1);
    assert!(active[0].remaining <= Duration::from_secs(30));

    for (body, status, names) in [
        // The same name again: refused by the engine's state.
        (
            r#"{"name": "slow-db", "target": "db", "fault": {"kind": "partition"}, "duration_ms": 1000}"#,
            409,
            "slow-db",
        ),
        // Out of range: the field and the value are named.
        (
            r#"{"name": "e", "target": "db", "fault": {"kind": "errors", "rate": 1.5, "code": 503}, "duration_ms": 1000}"#,
            400,
            "1.5",
        ),
        (
            r#"{"name": "long", "target": "db", "fault": {"kind": "partition"}, "duration_ms": 99999999}"#,
            400,
            "duration",
        ),
        // Not a scenario at all.
        (r#"{"name": "x"}"#, 400, "target"),
        (
            r#"{"name": "x", "target": "db", "fault": {"kind": "meteor"}, "duration_ms": 5}"#,
            400,
            "meteor",
        ),
        ("not json", 400, "invalid scenario"),
        (
            r#"{"name": "x", "target": "nope", "fault": {"kind": "force_open"}, "duration_ms": 1000}"#,
            404,
            "nope",
        ),
    ] {
        let (got, answer) = r.post_json("/chaos", body).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(names), "{body}: {message}");
    }
    assert_eq!(engine.active().len(), 1, "nothing refused was started");
    r.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_token_and_json_and_a_forged_request_gets_nowhere() {
    use reqwest::Method;
    let mut r = rig().await;
    r.start();
    let chaos_stopped = |r: &Rig| {
        let url = format!("{}/chaos", r.url);
        async move {
            let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            body["metrics"]["stopped"].as_bool().unwrap()
        }
    };
    // What a web page the operator visits could send: a simple form POST, no credentials.
    for (token, content_type, origin, expected) in [
        (None, "text/plain", Some("http://evil.example"), 401),
        (None, "application/x-www-form-urlencoded", Some("null"), 401),
        (
            Some("wrong-token-0123456789"),
            "application/json",
            None,
            401,
        ),
        (Some(TOKEN), "text/plain", Some("http://evil.example"), 415),
        (Some(TOKEN), "multipart/form-data; boundary=x", None, 415),
    ] {
        let (status, body) = r
            .send_as(Method::POST, "/chaos/stop", token, content_type, origin)
            .await;
        assert_eq!(status, expected, "{token:?} {content_type}: {body}");
        assert!(body["error"].is_string(), "{body}");
        assert_eq!(body["governance"], "cdd01ef066bc6cf2", "{body}");
        assert!(!chaos_stopped(&r).await, "nothing was stopped");
    }
    let (status, _) = r
        .send_as(Method::DELETE, "/chaos/anything", None, "text/plain", None)
        .await;
    assert_eq!(status, 401);
    // Reads stay open; the real thing works.
    assert_eq!(r.get("/chaos").await.0, 200);
    assert_eq!(r.send(Method::POST, "/chaos/stop").await.0, 200);
    assert!(chaos_stopped(&r).await);
    r.stop.cancel();

    // Without a configured token, mutations are refused outright, saying how to enable them.
    let mut open = rig_with(http::HttpConfig::default()).await;
    open.start();
    let (status, body) = open.send(Method::POST, "/chaos/stop").await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("admin_token") && message.contains("RESILIENCE_ADMIN_TOKEN"),
        "{message}"
    );
    assert_eq!(open.get("/metrics").await.0, 200);
    open.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused() {
    let mut r = rig().await;
    r.start();
    let response = reqwest::Client::new()
        .post(format!("{}/chaos/stop", r.url))
        .bearer_auth(TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(20 << 10)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    r.stop.cancel();
}

/// Reads `stream` until the server closes it; how long that took (or `None` within `limit`).
async fn closed_within(mut stream: tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_surplus_connections_are_cut_off_in_bounded_time() {
    use tokio::io::AsyncWriteExt;
    let mut r = rig_with(
        http::HttpConfig::default()
            .header_read_timeout(Duration::from_millis(500))
            .max_connections(32),
    )
    .await;
    r.start();
    let address = r.url.trim_start_matches("http://").to_owned();
    // 60 idle connections (28 beyond the cap), and 3 slowloris clients trickling a header.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(started.elapsed());
                }
            }
            None
        }));
    }
    let closes: Vec<Option<Duration>> = futures_util::future::join_all(
        idle.into_iter()
            .map(|stream| closed_within(stream, Duration::from_secs(3))),
    )
    .await;
    let cut = closes.iter().filter(|c| c.is_some()).count();
    let latest = closes.iter().flatten().max().copied().unwrap_or_default();
    assert_eq!(cut, 60, "every idle connection was closed: {closes:?}");
    assert!(
        latest < Duration::from_millis(1500),
        "latest close {latest:?}"
    );
    for client in slow {
        let cut_after = client.await.unwrap();
        assert!(
            cut_after.is_some_and(|d| d < Duration::from_millis(1500)),
            "a slowloris client was cut off: {cut_after:?}"
        );
    }
    // And the server still answers.
    assert_eq!(r.get("/health/live").await.0, 200);
    eprintln!(
        "60 idle (32 allowed) and 3 slowloris connections all closed within {} ms",
        latest.as_millis()
    );
    r.stop.cancel();
}

//! The tower layers on a real axum server, driven by a real HTTP client: shedding, chaos,
//! metering, and what happens when a client gives up mid-request or a handler panics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resilience_core::chaos::{ErrorCode, FaultSpec, Scenario};
use resilience_core::meter::{MeterRing, Operation, Tier};
use resilience_core::tower::{
    ChaosError, ChaosLayer, CircuitBreakerLayer, LatencyClock, MeteringLayer,
};
use resilience_core::{CallError, CircuitBreaker, Fault, FaultTable, Outcome, State};
use tokio::sync::mpsc;
use tower::ServiceBuilder;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// 5xx responses count against the breaker, 4xx are the caller's fault and are ignored.
fn by_status(result: &Result<Response, Infallible>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(response) if response.status().is_client_error() => Outcome::Ignore,
        _ => Outcome::Success,
    }
}

/// A shed call becomes 503 with Retry-After and the reason, as a service would answer.
async fn shed(error: CallError<Infallible>) -> Response {
    // Axum handlers are infallible: a rejection is the only error there is.
    let CallError::Rejected(rejected) = error;
    let mut headers = HeaderMap::new();
    headers.insert("x-rejected", rejected.reason().as_str().parse().unwrap());
    if let Some(after) = rejected.retry_after() {
        headers.insert("retry-after", after.as_secs().max(1).into());
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        headers,
        rejected.to_string(),
    )
        .into_response()
}

/// `router`'s routes behind `breaker`: 5xx counts against it, a shed call answers 503.
fn guarded(router: Router, breaker: &Arc<CircuitBreaker>) -> Router {
    router.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(shed))
            .layer(CircuitBreakerLayer::new(breaker.clone()).classify(by_status)),
    )
}

/// Signals when a handler's future is dropped before it finished.
struct DroppedGuard(Option<mpsc::UnboundedSender<()>>);

impl Drop for DroppedGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn the_breaker_layer_sheds_with_503_once_failures_trip_it() {
    let breaker = Arc::new(
        CircuitBreaker::builder("payments")
            .fail_max(3)
            .reset_timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = Router::new().route(
        "/charge/{outcome}",
        get(
            move |axum::extract::Path(outcome): axum::extract::Path<String>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    match outcome.as_str() {
                        "ok" => StatusCode::OK,
                        "bad" => StatusCode::UNPROCESSABLE_ENTITY,
                        _ => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }
            },
        ),
    );
    let router = guarded(router, &breaker);
    let base = format!("http://{}", serve(router).await);
    let http = client();
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}{path}")).send().await.unwrap() }
    };

    assert_eq!(status("/charge/ok").await.status(), 200);
    for _ in 0..5 {
        assert_eq!(status("/charge/bad").await.status(), 422);
    }
    assert_eq!(breaker.state(), State::Closed, "client errors are ignored");
    for _ in 0..3 {
        assert_eq!(status("/charge/fail").await.status(), 500);
    }
    assert_eq!(breaker.state(), State::Open);

    let shed = status("/charge/ok").await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["x-rejected"], "open");
    let retry_after: u64 = shed.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (29..=30).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert!(shed.text().await.unwrap().contains("is open; retry after"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        9,
        "the shed call never reached the handler"
    );
    let totals = breaker.snapshot().totals;
    assert_eq!(
        (
            totals.successes,
            totals.ignored,
            totals.failures,
            totals.rejected
        ),
        (1, 5, 3, 1)
    );
}

#[tokio::test]
async fn a_client_that_gives_up_frees_the_half_open_probe() {
    const FAIL: u8 = 0;
    const HANG: u8 = 1;
    const OK: u8 = 2;
    let breaker = Arc::new(
        CircuitBreaker::builder("inventory")
            .fail_max(1)
            .reset_timeout(Duration::from_millis(200))
            .half_open_probes(1)
            .half_open_successes(1)
            .build()
            .unwrap(),
    );
    let mode = Arc::new(AtomicU8::new(FAIL));
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
    let handler_mode = mode.clone();
    let router = Router::new().route(
        "/stock",
        get(move || {
            let mode = handler_mode.load(Ordering::SeqCst);
            let guard = DroppedGuard(Some(dropped_tx.clone()));
            async move {
                match mode {
                    FAIL => StatusCode::INTERNAL_SERVER_ERROR,
                    HANG => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(guard);
                        StatusCode::OK
                    }
                    _ => {
                        std::mem::forget(guard);
                        StatusCode::OK
                    }
                }
            }
        }),
    );
    let router = guarded(router, &breaker);
    let url = format!("http://{}/stock", serve(router).await);
    let http = client();

    assert_eq!(http.get(&url).send().await.unwrap().status(), 500);
    assert_eq!(breaker.state(), State::Open);
    tokio::time::sleep(Duration::from_millis(300)).await; // past the OPEN time
    mode.store(HANG, Ordering::SeqCst);
    let probing = tokio::spawn(http.get(&url).timeout(Duration::from_millis(500)).send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while breaker.state() != State::HalfOpen {
        assert!(
            Instant::now() < deadline,
            "the probe never reached the breaker"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While the probe hangs, its slot is the only one.
    let busy = http.get(&url).send().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["x-rejected"], "half_open_full");
    assert!(probing.await.unwrap().unwrap_err().is_timeout());
    // The server notices the closed connection and drops the handler's future...
    tokio::time::timeout(Duration::from_secs(5), dropped.recv())
        .await
        .expect("the server dropped the abandoned request")
        .unwrap();
    // ...which released the probe slot without counting a failure.
    mode.store(OK, Ordering::SeqCst);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().totals.failures, 1);
}

#[tokio::test]
async fn a_panicking_handler_counts_as_a_failure() {
    let breaker = Arc::new(
        CircuitBreaker::builder("search")
            .fail_max(1)
            .build()
            .unwrap(),
    );
    let router = Router::new().route(
        "/search",
        get(|| async {
            if true {
                panic!("handler bug");
            }
            StatusCode::OK
        }),
    );
    let router = guarded(router, &breaker);
    let url = format!("http://{}/search", serve(router).await);
    // The connection dies with the handler; the client sees an error, the breaker a failure.
    assert!(client().get(&url).send().await.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while breaker.state() != State::Open {
        assert!(Instant::now() < deadline, "panic not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(breaker.snapshot().totals.failures, 1);
}

/// Injected faults become the responses a real outage would give.
async fn injected(error: ChaosError<Infallible>) -> Response {
    let status = match error.injected() {
        Some(Fault::Error(ErrorCode(code))) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Some(Fault::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, error.to_string()).into_response()
}

#[tokio::test]
async fn the_chaos_layer_slows_and_fails_requests_while_scenarios_last() {
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let point = table.point("catalog").unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = Router::new()
        .route(
            "/catalog",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { "catalog" }
            }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(injected))
                .layer(ChaosLayer::new(table.clone(), point, tokio::time::sleep)),
        );
    let url = format!("http://{}/catalog", serve(router).await);
    let http = client();
    let timed = |timeout: Option<Duration>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let mut request = http.get(&url);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let result = request.send().await;
            (result, started.elapsed())
        }
    };
    let arm = |name: &str, spec: FaultSpec| {
        table
            .arm(Scenario::new(name, "catalog", spec).duration(Duration::from_secs(60)))
            .unwrap();
    };

    let (response, _) = timed(None).await;
    assert_eq!(response.unwrap().text().await.unwrap(), "catalog");

    arm("slow", FaultSpec::Latency(Duration::from_millis(300)));
    let (response, elapsed) = timed(None).await;
    assert_eq!(response.unwrap().status(), 200);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    table.disarm_name("slow").unwrap();

    arm("unavailable", FaultSpec::Error(ErrorCode(503)));
    let (response, _) = timed(None).await;
    let response = response.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("503"));
    table.disarm_name("unavailable").unwrap();

    arm("stalled", FaultSpec::Timeout(Duration::from_millis(200)));
    let (response, elapsed) = timed(None).await;
    assert_eq!(response.unwrap().status(), 504);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    table.disarm_name("stalled").unwrap();

    arm("cut", FaultSpec::Partition);
    assert_eq!(timed(None).await.0.unwrap().status(), 502);
    let before = hits.load(Ordering::SeqCst);
    assert_eq!(
        before, 2,
        "only the unfaulted and the delayed requests reached the handler"
    );

    // A client that gives up during injected latency: the request is never made.
    table.disarm_name("cut").unwrap();
    arm("very-slow", FaultSpec::Latency(Duration::from_secs(5)));
    let (gave_up, _) = timed(Some(Duration::from_millis(100))).await;
    assert!(gave_up.unwrap_err().is_timeout());

    // Emergency stop: everything straight through at once.
    arm("unavailable-again", FaultSpec::Error(ErrorCode(500)));
    table.emergency_stop();
    let (response, elapsed) = timed(None).await;
    assert_eq!(response.unwrap().status(), 200);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn the_metering_layer_records_one_event_per_request_even_when_cancelled() {
    let ring = Arc::new(MeterRing::with_capacity(1024).unwrap());
    fn tenant(request: &axum::extract::Request) -> Option<&str> {
        request.headers().get("x-tenant")?.to_str().ok()
    }
    fn agent(request: &axum::extract::Request) -> Option<&str> {
        request.headers().get("x-agent")?.to_str().ok()
    }
    let metering = MeteringLayer::new(ring.clone(), tenant, agent)
        .operation(Operation::PolicyEvaluation)
        .tier(Tier::Enterprise)
        .latency_clock(LatencyClock::Precise)
        .tokens(|result: &Result<Response, Infallible>| {
            result
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get("x-tokens")?.to_str().ok()?.parse().ok())
                .unwrap_or(0)
        });
    let router = Router::new()
        .route(
            "/evaluate",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                ([("x-tokens", "120")], "allow")
            }),
        )
        .route(
            "/deliberate",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "done"
            }),
        )
        .layer(metering.clone());
    let base = format!("http://{}", serve(router).await);
    let http = client();
    let ask = |path: &str, tenant: Option<&str>| {
        let mut request = http
            .get(format!("{base}{path}"))
            .header("x-agent", "policy-bot");
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        request
    };

    for tenant in ["acme", "globex", "acme"] {
        let response = ask("/evaluate", Some(tenant)).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "allow");
    }
    assert_eq!(ask("/evaluate", None).send().await.unwrap().status(), 200);
    assert_eq!(metering.unattributed(), 1);

    let mut events = Vec::new();
    ring.drain_into(&mut events, 100);
    let tenants: Vec<_> = events
        .iter()
        .map(|e| e.tenant.as_str().to_owned())
        .collect();
    assert_eq!(tenants, ["acme", "globex", "acme"]);
    for event in &events {
        assert_eq!(event.agent.as_str(), "policy-bot");
        assert_eq!(event.operation, Operation::PolicyEvaluation);
        assert_eq!(event.tier, Tier::Enterprise);
        assert_eq!(event.tokens, 120);
        assert!(
            event.latency_us >= 20_000,
            "latency {} µs",
            event.latency_us
        );
    }

    // A client that gives up: the server drops the request, which is still metered.
    let gave_up = ask("/deliberate", Some("initech"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    let deadline = Instant::now() + Duration::from_secs(5);
    while ring.pending() == 0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled request was not metered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    events.clear();
    ring.drain_into(&mut events, 100);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant.as_str(), "initech");
    assert_eq!(events[0].tokens, 0);
    assert!(
        events[0].latency_us >= 150_000,
        "latency {} µs",
        events[0].latency_us
    );
    let ledger = ring.ledger();
    assert_eq!((ledger.offered, ledger.accepted), (4, 4));
}

/// A bulkhead or rate-limit refusal, as a service would answer it: 503 or 429 with
/// Retry-After.
async fn refused(error: tower::BoxError) -> Response {
    if let Some(full) = error.downcast_ref::<resilience_core::bulkhead::BulkheadFull>() {
        return (StatusCode::SERVICE_UNAVAILABLE, full.to_string()).into_response();
    }
    if let Some(limited) = error.downcast_ref::<resilience_core::rate_limit::RateLimited>() {
        let mut headers = HeaderMap::new();
        if let Some(after) = limited.retry_after() {
            headers.insert("retry-after", after.as_secs().max(1).into());
        }
        return (StatusCode::TOO_MANY_REQUESTS, headers, limited.to_string()).into_response();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
}

/// Four requests at once into a bulkhead of two whose handler waits: two run, two are refused
/// with 503 at once; once the two finish, the slots are free again.
#[tokio::test]
async fn the_bulkhead_layer_refuses_beyond_its_limit_and_frees_slots() {
    use resilience_core::bulkhead::Bulkhead;
    use resilience_core::tower::BulkheadLayer;

    let bulkhead = Arc::new(Bulkhead::builder("slow").max_concurrent(2).build().unwrap());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let router = Router::new()
        .route(
            "/slow",
            get(move || {
                let (gate, entered) = (g.clone(), e.clone());
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    "done"
                }
            }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .layer(BulkheadLayer::new(bulkhead.clone()))
                .map_err(|never: Infallible| -> tower::BoxError { match never {} }),
        );
    let addr = serve(router).await;
    let client = client();
    let url = format!("http://{addr}/slow");
    let calls: Vec<_> = (0..4)
        .map(|_| tokio::spawn(client.get(&url).send()))
        .collect();
    // Two are refused at once while two wait inside.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bulkhead.snapshot().rejected < 2 || entered.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "{:?}", bulkhead.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(bulkhead.in_flight(), 2);
    gate.add_permits(2);
    let mut statuses: Vec<u16> = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap().unwrap().status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503]);
    assert_eq!(
        entered.load(Ordering::SeqCst),
        2,
        "refused requests never reach the handler"
    );
    assert_eq!(bulkhead.in_flight(), 0);
    gate.add_permits(1);
    let again = client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

/// A burst of three, then 429 with a Retry-After the client can use.
#[tokio::test]
async fn the_rate_limit_layer_answers_429_with_retry_after() {
    use resilience_core::rate_limit::RateLimiter;
    use resilience_core::tower::RateLimitLayer;

    let limiter = Arc::new(
        RateLimiter::builder("api")
            .rate(1, Duration::from_secs(30))
            .burst(3)
            .build()
            .unwrap(),
    );
    let router = Router::new()
        .route("/api", get(|| async { "ok" }))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .layer(RateLimitLayer::new(limiter.clone()))
                .map_err(|never: Infallible| -> tower::BoxError { match never {} }),
        );
    let addr = serve(router).await;
    let client = client();
    let url = format!("http://{addr}/api");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client.get(&url).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=30).contains(&after), "retry-after {after}");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let snap = limiter.snapshot();
    assert_eq!((snap.admitted, snap.rejected), (3, 2));
}

/// The client side: a tower stack (retry outside a time limit) calling a real upstream over
/// HTTP. A flaky upstream is retried until it answers; a hanging one is cut off at the limit on
/// every attempt, and the retry gives up after its attempts with the time-out as the error.
#[tokio::test]
async fn the_retry_and_time_limit_layers_call_a_real_upstream() {
    use resilience_core::retry::{Backoff, Retry};
    use resilience_core::timeout::{TimeLimiter, TimedOut};
    use resilience_core::tower::{RetryLayer, TimeLimitLayer};
    use tower::{Service, ServiceExt};

    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let upstream = Router::new()
        .route(
            "/flaky",
            get(move || {
                let n = h.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()
                    } else {
                        "ok".into_response()
                    }
                }
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        );
    let addr = serve(upstream).await;
    let http = client();
    let upstream_call = tower::service_fn(move |path: &'static str| {
        let request = http.get(format!("http://{addr}{path}"));
        async move {
            let response = request.send().await?;
            if response.status().is_server_error() {
                return Err::<String, tower::BoxError>(
                    format!("upstream {}", response.status()).into(),
                );
            }
            Ok(response.text().await?)
        }
    });
    let retry = Arc::new(
        Retry::builder("upstream")
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(20)))
            .build()
            .unwrap(),
    );
    let limit = Arc::new(
        TimeLimiter::builder("upstream")
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let mut stack = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone(), tokio::time::sleep))
        .layer(TimeLimitLayer::new(limit.clone(), tokio::time::sleep))
        .service(upstream_call);

    let body = stack.ready().await.unwrap().call("/flaky").await.unwrap();
    assert_eq!(body, "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "two 503s, then the answer");
    assert_eq!(retry.snapshot().retries, 2);

    let started = Instant::now();
    let err = stack
        .ready()
        .await
        .unwrap()
        .call("/hang")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.downcast_ref::<TimedOut>().is_some(), "{err}");
    // Three attempts of 200 ms and two backoffs of 20 ms, not the upstream's 30 s.
    assert!(took >= Duration::from_millis(640), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let snap = limit.snapshot();
    assert_eq!((snap.completed, snap.timed_out), (3, 3));
    assert_eq!(retry.snapshot().gave_up_attempts, 1);
}

/// A limit per tenant, read from a header on a real server: one tenant over its burst gets
/// 429 while another still gets through, and requests without the header are not limited.
#[tokio::test]
async fn the_keyed_rate_limit_layer_limits_each_tenant_on_its_own() {
    use axum::extract::Request;
    use resilience_core::rate_limit::{KeyedRateLimiter, key_hash};
    use resilience_core::tower::KeyedRateLimitLayer;

    let per_tenant = Arc::new(
        KeyedRateLimiter::builder("tenants")
            .rate(1, Duration::from_secs(60))
            .burst(2)
            .build()
            .unwrap(),
    );
    let tenant_of = |request: &Request| {
        request
            .headers()
            .get("x-tenant")
            .map(|v| key_hash(v.as_bytes()))
    };
    let router = Router::new()
        .route("/api", get(|| async { "ok" }))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .layer(KeyedRateLimitLayer::new(per_tenant.clone(), tenant_of))
                .map_err(|never: Infallible| -> tower::BoxError { match never {} }),
        );
    let addr = serve(router).await;
    let client = client();
    let url = format!("http://{addr}/api");
    let call = |tenant: Option<&'static str>| {
        let mut request = client.get(&url);
        if let Some(t) = tenant {
            request = request.header("x-tenant", t);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let mut acme = Vec::new();
    for _ in 0..4 {
        acme.push(call(Some("acme")).await);
    }
    assert_eq!(acme, [200, 200, 429, 429]);
    assert_eq!(
        call(Some("globex")).await,
        200,
        "another tenant has its own limit"
    );
    for _ in 0..5 {
        assert_eq!(call(None).await, 200, "no tenant, no limit");
    }
    let snap = per_tenant.snapshot();
    assert_eq!((snap.admitted, snap.rejected), (3, 2));
}

//! Bulkheads and rate limiters held by the control plane: looked up by name, refused when a
//! name repeats or a tag differs, and shown over real HTTP in `/metrics` and `GET /limits`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_control::{BuildError, ControlPlane, GovernanceHash, http};
use resilience_core::BreakerRegistry;
use resilience_core::bulkhead::Bulkhead;
use resilience_core::rate_limit::RateLimiter;
use tokio_util::sync::CancellationToken;

fn bulkhead(name: &str, limit: u32) -> Arc<Bulkhead> {
    Arc::new(
        Bulkhead::builder(name)
            .max_concurrent(limit)
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    )
}

fn limiter(name: &str) -> Arc<RateLimiter> {
    Arc::new(
        RateLimiter::builder(name)
            .rate(1, Duration::from_secs(60))
            .burst(2)
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn limits_are_looked_up_by_name_and_shown_over_http() {
    let (search, api) = (bulkhead("search", 2), limiter("api"));
    let tenants = Arc::new(
        resilience_core::rate_limit::KeyedRateLimiter::builder("tenants")
            .rate(1, Duration::from_secs(60))
            .burst(1)
            .capacity(64)
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    );
    let (control, driver) = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .bulkhead(search.clone())
        .bulkhead(bulkhead("db", 8))
        .rate_limiter(api.clone())
        .keyed_rate_limiter(tenants.clone())
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(
        control.limits().keyed_rate_limiter("tenants").unwrap(),
        &tenants
    ));
    tenants.try_acquire("acme").unwrap();
    assert!(tenants.try_acquire("acme").is_err());
    tenants.try_acquire("globex").unwrap();
    tokio::spawn(driver);
    assert!(Arc::ptr_eq(
        control.limits().bulkhead("search").unwrap(),
        &search
    ));
    assert!(control.limits().bulkhead("nope").is_none());
    assert!(Arc::ptr_eq(
        control.limits().rate_limiter("api").unwrap(),
        &api
    ));

    // Traffic: the bulkhead full, the limiter past its burst.
    let held = (search.try_acquire().unwrap(), search.try_acquire().unwrap());
    assert!(search.try_acquire().is_err());
    for _ in 0..3 {
        let _ = api.try_acquire();
    }
    assert_eq!(control.limits().saturated_bulkheads(), ["search"]);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(http::serve(listener, control.clone(), stop.clone()));
    let client = reqwest::Client::new();

    let view: serde_json::Value = client
        .get(format!("{url}/limits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["governance"], "cdd01ef066bc6cf2");
    let search_view = &view["bulkheads"][0];
    assert_eq!(search_view["name"], "search");
    assert_eq!(search_view["limit"], 2);
    assert_eq!(search_view["in_flight"], 2);
    assert_eq!(search_view["saturated"], true);
    assert_eq!(search_view["rejected"], 1);
    assert_eq!(view["bulkheads"][1]["saturated"], false);
    let api_view = &view["rate_limiters"][0];
    assert_eq!(api_view["name"], "api");
    assert_eq!(api_view["burst"], 2);
    assert_eq!(api_view["available"], 0);
    assert_eq!(
        (api_view["admitted"].as_u64(), api_view["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(api_view["interval_ns"], 60_000_000_000u64);
    let tenants_view = &view["keyed_rate_limiters"][0];
    assert_eq!(tenants_view["name"], "tenants");
    assert_eq!(tenants_view["capacity"], 64);
    assert_eq!(tenants_view["keys_limited"], 2);
    assert_eq!(
        (
            tenants_view["admitted"].as_u64(),
            tenants_view["rejected"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "resilience_bulkhead_in_flight{bulkhead=\"search\"} 2",
        "resilience_bulkhead_limit{bulkhead=\"db\"} 8",
        "resilience_bulkhead_calls_total{bulkhead=\"search\",result=\"admitted\"} 2",
        "resilience_bulkhead_calls_total{bulkhead=\"search\",result=\"rejected\"} 1",
        "resilience_rate_limiter_available{limiter=\"api\"} 0",
        "resilience_rate_limiter_calls_total{limiter=\"api\",result=\"rejected\"} 1",
        "resilience_keyed_rate_limiter_calls_total{limiter=\"tenants\",result=\"admitted\"} 2",
        "resilience_keyed_rate_limiter_calls_total{limiter=\"tenants\",result=\"table_full\"} 0",
        "resilience_keyed_rate_limiter_keys_limited{limiter=\"tenants\"} 2",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    drop(held);
    assert!(control.limits().saturated_bulkheads().is_empty());
    stop.cancel();
    control.shutdown().await.unwrap();
}

#[test]
fn a_repeated_name_or_a_foreign_tag_is_refused_at_build() {
    let err = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .bulkhead(bulkhead("db", 1))
        .bulkhead(bulkhead("db", 2))
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(&err, BuildError::DuplicateName { kind: "bulkhead", name } if name == "db"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "two bulkheads are called \"db\": names must be unique"
    );
    let same_name_keyed = Arc::new(
        resilience_core::rate_limit::KeyedRateLimiter::builder("api")
            .rate(1, Duration::from_secs(1))
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    );
    let err = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .rate_limiter(limiter("api"))
        .keyed_rate_limiter(same_name_keyed)
        .build()
        .err()
        .unwrap();
    assert!(matches!(
        err,
        BuildError::DuplicateName {
            kind: "rate limiter",
            ..
        }
    ));

    let foreign = GovernanceHash::parse("0123456789abcdef").unwrap();
    let tagged = Arc::new(Bulkhead::builder("x").governance(foreign).build().unwrap());
    let err = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .bulkhead(tagged)
        .build()
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::Governance(_)), "{err}");
    assert!(err.to_string().contains("0123456789abcdef"), "{err}");
}

/// Retries and time limits from the builder: shown in `/metrics` and `GET /limits`, and a
/// retry budget that runs dry or a bulkhead that turns calls away puts health under pressure
/// (named in the report, HEALTHY read as DEGRADED) for the samples in which it happened.
#[tokio::test(start_paused = true)]
async fn policies_that_turn_calls_away_are_counted_in_health_and_metrics() {
    use resilience_control::health::HealthStatus;
    use resilience_core::retry::{Backoff, Retry, RetryBudget};
    use resilience_core::timeout::TimeLimiter;

    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.0)
            .min_per_sec(0)
            .build()
            .unwrap(),
    );
    let retry = Arc::new(
        Retry::builder("search")
            .backoff(Backoff::constant(Duration::ZERO))
            .budget(budget)
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    );
    let limit = Arc::new(
        TimeLimiter::builder("search")
            .timeout(Duration::from_millis(10))
            .governance(GovernanceHash::DEFAULT)
            .build()
            .unwrap(),
    );
    let pool = bulkhead("pool", 1);
    let (control, driver) = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .bulkhead(pool.clone())
        .retry(retry.clone())
        .time_limiter(limit.clone())
        .build()
        .unwrap();
    tokio::spawn(driver);
    // Let the driver take its first sample (the next is a second away on the paused clock),
    // so the samples below are the only ones that see the refusals.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        control.health().report().sequence >= 1,
        "the driver sampled"
    );
    assert!(Arc::ptr_eq(
        control.limits().retry("search").unwrap(),
        &retry
    ));

    let quiet = control.health().sample();
    assert_eq!(quiet.status, HealthStatus::Healthy);
    assert!(quiet.pressure.is_empty());

    // The budget is empty: the failed call is not retried, and health hears of it.
    assert_eq!(retry.call(|_| Err::<(), _>("down")), Err("down"));
    let held = pool.try_acquire().unwrap();
    assert!(pool.try_acquire().is_err());
    let late = limit
        .call_async(|_| std::future::pending::<()>(), tokio::time::sleep)
        .await;
    assert!(late.is_err());
    let pressed = control.health().sample();
    assert_eq!(pressed.pressure.exhausted_retry_budgets, ["search"]);
    assert_eq!(pressed.pressure.rejecting_bulkheads, ["pool"]);
    assert_eq!(
        pressed.status,
        HealthStatus::Degraded,
        "score {}",
        pressed.score
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(http::serve(listener, control.clone(), stop.clone()));
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "resilience_retry_outcomes_total{retry=\"search\",outcome=\"gave_up_budget\"} 1",
        "resilience_retry_outcomes_total{retry=\"search\",outcome=\"retried\"} 0",
        "resilience_retry_budget_available{retry=\"search\"} 0",
        "resilience_time_limiter_calls_total{limiter=\"search\",result=\"timed_out\"} 1",
        "resilience_health_pressure{kind=\"exhausted_retry_budget\"} 1",
        "resilience_health_pressure{kind=\"rejecting_bulkhead\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let view: serde_json::Value = client
        .get(format!("{url}/limits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["retries"][0]["name"], "search");
    assert_eq!(view["retries"][0]["gave_up_budget"], 1);
    assert_eq!(view["retries"][0]["budget_available"], 0);
    assert_eq!(view["time_limiters"][0]["timed_out"], 1);
    assert_eq!(view["time_limiters"][0]["timeout_ns"], 10_000_000);

    // Nothing turned away since: the pressure is gone.
    drop(held);
    let calm = control.health().sample();
    assert!(calm.pressure.is_empty(), "{:?}", calm.pressure);
    assert_eq!(calm.status, HealthStatus::Healthy);
    stop.cancel();
    control.shutdown().await.unwrap();
}

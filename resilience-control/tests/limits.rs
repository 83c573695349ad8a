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
    let (control, driver) = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .bulkhead(search.clone())
        .bulkhead(bulkhead("db", 8))
        .rate_limiter(api.clone())
        .build()
        .unwrap();
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
    let err = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .rate_limiter(limiter("api"))
        .rate_limiter(limiter("api"))
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

//! Wiring the control plane into a service's `main`: breakers on the request path, the control
//! loops beside them, one shutdown at the end.
//!
//! `cargo run -p resilience-control --example service`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience_control::ControlPlane;
use resilience_control::health::HealthConfig;
use resilience_control::recovery::{RecoveryPolicy, RecoveryStrategy};
use resilience_core::{BreakerConfig, BreakerRegistry, CallError};

/// A dependency that fails for a while, then comes back.
fn call_inventory(request: u32) -> Result<u32, &'static str> {
    if (20..60).contains(&request) {
        Err("inventory unavailable")
    } else {
        Ok(request * 2)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The data plane: breakers the request path uses directly.
    let registry = Arc::new(BreakerRegistry::new());
    let inventory =
        registry.get_or_create("inventory", BreakerConfig::builder().fail_max(5).build()?)?;

    // The control plane: health, recovery and the event pump, on this runtime.
    let clock = Arc::new(AtomicU32::new(0));
    let probe = Arc::clone(&clock);
    let control = ControlPlane::builder()
        .registry(registry.clone())
        .health(HealthConfig::default().interval(Duration::from_millis(50)))
        .health_check("inventory", move |_service: String| {
            // Ask the dependency itself, off the request path.
            let answer = call_inventory(probe.load(Ordering::Relaxed))
                .map(|_| ())
                .map_err(str::to_owned);
            async move { answer }
        })
        .recovery_policy(
            "inventory",
            RecoveryPolicy::with_strategy(RecoveryStrategy::LinearBackoff)
                .initial_delay(Duration::from_millis(100)),
        )
        .spawn()?;
    let mut changes = control.health().subscribe();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            println!(
                "health {} -> {} (score {:.2})",
                change.from, change.to, change.report.score
            );
        }
    });

    // The request path.
    let (mut served, mut failed, mut shed) = (0, 0, 0);
    for request in 0..100 {
        clock.store(request, Ordering::Relaxed);
        match inventory.call(|| call_inventory(request)) {
            Ok(_) => served += 1,
            Err(CallError::Inner(_)) => failed += 1,
            Err(CallError::Rejected(_)) => shed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("served {served}, failed {failed}, shed {shed}");
    println!("recovery: {:?}", control.recovery().stats());

    // One shutdown: stop the loops, drain what is pending, wait.
    control.shutdown().await?;
    Ok(())
}

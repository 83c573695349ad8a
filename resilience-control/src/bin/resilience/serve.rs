//! `resilience serve`: the control plane and its HTTP endpoints, from the configuration, until
//! Ctrl-C or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use resilience_control::fleet::{Fleet, FleetError};
use resilience_control::health::PagerDutySink;
use resilience_control::{ControlPlane, ResilienceConfig, http};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::wiring;

pub(crate) async fn run(config_path: Option<&Path>) -> Result<(), Error> {
    let config = ResilienceConfig::load(config_path)?;
    let http_config = config.http_config()?;
    // The port first: a bind failure must leave no trace (no spool, no ring file, nothing in
    // the fleet's Redis).
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (http.listen): {e}", config.http.listen))?;
    let parts = wiring::assemble(
        &config,
        config.chaos_config()?,
        wiring::Sink::from_config(&config),
        &config.namespace,
    )
    .await?;
    for notice in &parts.notices {
        eprintln!("warning: {notice}");
    }
    let mut builder = ControlPlane::builder()
        .registry(parts.registry.clone())
        .governance(config.constitutional_hash)
        .health(config.health_config()?)
        .recovery(config.recovery_config()?)
        .chaos(parts.chaos.clone());
    if let Some(flusher) = &parts.flusher {
        builder = builder.metering(flusher.clone());
    }
    for bulkhead in config.bulkheads()? {
        builder = builder.bulkhead(bulkhead);
    }
    for limiter in config.rate_limiters()? {
        builder = builder.rate_limiter(limiter);
    }
    for limiter in config.keyed_rate_limiters()? {
        builder = builder.keyed_rate_limiter(limiter);
    }
    for retry in config.retries()? {
        builder = builder.retry(retry);
    }
    for limiter in config.time_limiters()? {
        builder = builder.time_limiter(limiter);
    }
    let fleet = match config.fleet_config()? {
        Some(settings) => {
            let name = settings.instance_name().to_owned();
            let fleet = match Fleet::connect(settings.clone()).await {
                Ok(fleet) => fleet,
                // Redis down at start: run alone and join when it returns.
                Err(FleetError::Redis(e)) => {
                    eprintln!("warning: fleet Redis unreachable ({e}); joining when it returns");
                    Fleet::lazy(settings)?
                }
                Err(e) => return Err(format!("cannot join the fleet: {e}").into()),
            };
            builder = builder.fleet(fleet);
            Some(name)
        }
        None => None,
    };
    if let Some(key) = &config.health.pagerduty_routing_key {
        let mut sink = PagerDutySink::new(key, config.namespace.clone());
        if let Some(url) = &config.health.pagerduty_url {
            sink = sink.url(url);
        }
        builder = builder
            .alerts(Arc::new(sink))
            .alert_on(config.alert_classes()?);
    }
    let control = builder.spawn()?;
    let address = listener.local_addr()?;
    println!(
        "resilience serving on http://{address}  (governance {})",
        config.constitutional_hash
    );
    println!("  breakers: {}", parts.registry.len());
    match &fleet {
        Some(name) => println!(
            "  fleet:    instance {name} in namespace {} (chaos stop --fleet reaches it)",
            config.namespace
        ),
        None => println!("  fleet:    off (fleet.enabled / FLEET_ENABLED)"),
    }
    println!("  metering: {}", parts.destination);
    println!("  ring:     {}", parts.ring);
    let chaos = config.chaos_config()?;
    println!(
        "  chaos:    {}",
        if chaos.permits_chaos() {
            format!("enabled ({} environment)", config.environment)
        } else if chaos.enabled {
            "refused: the environment is production (chaos.allow_in_production, or RESILIENCE_ENVIRONMENT)".to_owned()
        } else {
            "disabled (chaos.enabled / CHAOS_ENABLED)".to_owned()
        }
    );
    println!(
        "  control:  {}",
        if http_config.admin_token.is_some() {
            "POST/DELETE endpoints need the admin token (Authorization: Bearer)"
        } else {
            "POST/DELETE endpoints refused: no admin token (http.admin_token_file / RESILIENCE_ADMIN_TOKEN)"
        }
    );
    println!(
        "  endpoints: /metrics /health/live /health/ready /health/startup /health /breakers /recovery /chaos /metering"
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(http::serve_with(
        listener,
        control.clone(),
        http_config,
        stop.clone(),
    ));
    wiring::shutdown_signal().await;
    println!("shutting down: stopping loops, flushing metering");
    control.shutdown().await?;
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => return Err(join.into()),
        Err(_) => eprintln!("HTTP connections still open after 5 s; leaving them"),
    }
    if let Some(flusher) = &parts.flusher {
        println!("metering: {}", ledger_line(&flusher.ledger()));
    }
    Ok(())
}

/// The metering ledger in one line, for people.
pub(crate) fn ledger_line(l: &resilience_control::metering::MeteringLedger) -> String {
    let mut line = format!(
        "offered {}, accepted {}, inherited {}, flushed {}, spooled {}, pending {}, refused {}",
        l.offered,
        l.accepted,
        l.inherited,
        l.flushed,
        l.spooled,
        l.pending,
        l.refused_full + l.refused_closed
    );
    if l.duplicates > 0 {
        line.push_str(&format!(", already delivered {}", l.duplicates));
    }
    if l.quarantined > 0 || l.corrupt_files > 0 {
        line.push_str(&format!(
            ", quarantined {} ({} corrupt spool files, {} bytes)",
            l.quarantined, l.corrupt_files, l.corrupt_bytes
        ));
    }
    line
}

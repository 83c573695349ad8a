//! `resilience demo`: a simulated service. Worker tasks call three flaky dependencies through
//! circuit breakers; a quarter of the way in, chaos partitions one dependency, makes another
//! fail most calls and slows the third; health falls to CRITICAL, recovery probes the
//! dependencies until the chaos expires, and health comes back. Every call is metered (to
//! Redis when one answers, else to a JSONL file) and the hot path is timed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use resilience_control::health::{HealthChange, HealthConfig, HealthStatus};
use resilience_control::metering::SinkHealth;
use resilience_control::recovery::{RecoveryConfig, RecoveryPolicy, RecoveryStrategy};
use resilience_control::{ControlPlane, ResilienceConfig, http};
use resilience_core::chaos::{ChaosPoint, ErrorCode, Fault, FaultTable};
use resilience_core::meter::{Operation, Outcome};
use resilience_core::{BreakerConfig, CircuitBreaker, State};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::wiring::{self, Parts};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long the demo runs.
    #[arg(long, default_value = "20s", value_parser = crate::duration)]
    pub(crate) duration: Duration,
    /// Worker tasks calling the dependencies.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// How often a progress line is printed.
    #[arg(long, default_value = "1s", value_parser = crate::duration)]
    pub(crate) every: Duration,
    /// Where usage events go: `auto` (the Redis of REDIS_URL / redis_url when one is
    /// configured, else the JSONL file), `redis` (that Redis, or 127.0.0.1:6379) or `jsonl`.
    /// A configured Redis that does not answer is reported, and events wait in the spool.
    #[arg(long, value_enum, default_value_t = SinkChoice::Auto)]
    pub(crate) sink: SinkChoice,
    /// Redis key namespace the demo writes under: its own, so it never mixes with a real
    /// service's metering or fleet keys.
    #[arg(long, default_value = "resilience-demo")]
    pub(crate) namespace: String,
    /// Also serve the HTTP endpoints here while the demo runs (e.g. 127.0.0.1:9090), so
    /// `resilience chaos list` and Prometheus can watch it.
    #[arg(long)]
    pub(crate) http: Option<SocketAddr>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkChoice {
    Auto,
    Redis,
    Jsonl,
}

/// A simulated dependency: its normal failure rate and latency.
struct Dependency {
    name: &'static str,
    error_rate: f64,
    latency: Duration,
    breaker: Arc<CircuitBreaker>,
    point: ChaosPoint,
    ok: AtomicU64,
    failed: AtomicU64,
    shed: AtomicU64,
}

const DEPENDENCIES: [(&str, f64, Duration); 3] = [
    ("payments", 0.01, Duration::from_millis(2)),
    ("inventory", 0.02, Duration::from_millis(1)),
    ("search", 0.005, Duration::from_millis(1)),
];

/// Per-worker timings of the two hot-path segments around each call, in nanoseconds.
struct Timings {
    before: Histogram<u64>,
    after: Histogram<u64>,
    total: Histogram<u64>,
}

impl Timings {
    fn new() -> Result<Self, Error> {
        Ok(Timings {
            before: Histogram::new_with_bounds(1, 10_000_000_000, 3)?,
            after: Histogram::new_with_bounds(1, 10_000_000_000, 3)?,
            total: Histogram::new_with_bounds(1, 10_000_000_000, 3)?,
        })
    }

    fn add(&mut self, other: &Timings) -> Result<(), Error> {
        self.before.add(&other.before)?;
        self.after.add(&other.after)?;
        self.total.add(&other.total)?;
        Ok(())
    }
}

pub(crate) async fn run(config_path: Option<&Path>, args: Args) -> Result<(), Error> {
    if args.workers == 0 || args.workers > 1024 {
        return Err(format!("--workers {}: expected 1 to 1024", args.workers).into());
    }
    if args.duration < Duration::from_secs(4) {
        return Err(format!(
            "--duration {}: expected at least 4s (chaos starts a quarter of the way in)",
            humantime::format_duration(args.duration)
        )
        .into());
    }
    let config = ResilienceConfig::load(config_path)?;
    let sink = match args.sink {
        SinkChoice::Auto => wiring::Sink::from_config(&config),
        SinkChoice::Redis => wiring::Sink::Redis(
            config
                .redis_url
                .clone()
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        ),
        SinkChoice::Jsonl => wiring::Sink::Jsonl,
    };
    // The demo is a sandbox: chaos is on here whatever the configuration says, and it writes
    // only under its own namespace (`--namespace`, `resilience-demo` by default).
    let parts = wiring::assemble(
        &config,
        config.chaos_config()?.enabled(true).production(false),
        sink,
        &args.namespace,
    )
    .await?;
    for notice in &parts.notices {
        eprintln!("warning: {notice}");
    }
    let dependencies = dependencies(&parts, &config)?;
    let control = control_plane(&parts, &config, &dependencies)?;

    println!(
        "resilience demo: {} workers for {}",
        args.workers,
        humantime::format_duration(args.duration)
    );
    println!("  dependencies: payments, inventory, search (each behind a circuit breaker)");
    println!("  metering:     {}", parts.destination);
    println!("  ring:         {}", parts.ring);
    println!("  governance:   {}", config.constitutional_hash);
    let stop_http = CancellationToken::new();
    if let Some(address) = args.http {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("--http {address}: {e}"))?;
        println!(
            "  http:         http://{}/metrics (try `resilience chaos list --url http://{}`)",
            listener.local_addr()?,
            listener.local_addr()?
        );
        tokio::spawn(http::serve_with(
            listener,
            control.clone(),
            config.http_config()?,
            stop_http.clone(),
        ));
    }
    println!();

    let started = Instant::now();
    let running = Arc::new(AtomicBool::new(true));
    let timeline = Arc::new(std::sync::Mutex::new(Vec::<(f64, HealthStatus, f64)>::new()));
    let watcher = watch_health(control.health().subscribe(), started, timeline.clone());
    let workers: Vec<_> = (0..args.workers)
        .map(|w| {
            let deps = dependencies.clone();
            let (table, hooks, running) =
                (parts.table.clone(), parts.hooks.clone(), running.clone());
            tokio::spawn(async move { worker(w as u64, &deps, &table, &hooks, &running).await })
        })
        .collect();

    let chaos_at = args.duration.mul_f64(0.25);
    let chaos_for = args.duration.mul_f64(0.35);
    let mut chaos_started = false;
    let mut ticker = tokio::time::interval(args.every);
    ticker.tick().await;
    let mut last_calls = 0u64;
    let mut last_tick = started;
    let mut metering_down = false;
    let signal = wiring::shutdown_signal();
    tokio::pin!(signal);
    while started.elapsed() < args.duration {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut signal => {
                println!("  ■ signal received: stopping early, flushing metering");
                break;
            }
        }
        if !chaos_started && started.elapsed() >= chaos_at {
            chaos_started = true;
            strike(&parts, chaos_for)?;
        }
        let now = Instant::now();
        last_calls = progress(
            &control,
            &parts,
            &dependencies,
            started,
            last_calls,
            now - last_tick,
        );
        last_tick = now;
        metering_news(&parts, &mut metering_down);
    }

    running.store(false, Ordering::Relaxed);
    let mut timings = Timings::new()?;
    for worker in workers {
        timings.add(&worker.await??)?;
    }
    let elapsed = started.elapsed();
    let recovery = control.recovery().stats();
    let chaos = parts.chaos.metrics();
    let transitions = control.transitions();
    let final_report = control.health().report();
    control.shutdown().await?;
    stop_http.cancel();
    watcher.abort();
    let ledger = parts
        .flusher
        .as_ref()
        .map(resilience_control::metering::MeteringFlusher::ledger);

    println!("\nsummary after {:.1} s", elapsed.as_secs_f64());
    let (ok, failed, shed) = dependencies.iter().fold((0, 0, 0), |(o, f, s), d| {
        (
            o + d.ok.load(Ordering::Relaxed),
            f + d.failed.load(Ordering::Relaxed),
            s + d.shed.load(Ordering::Relaxed),
        )
    });
    let calls = (ok + failed + shed).max(1);
    println!(
        "  calls        {} ({:.0}/s): ok {:.1}%, failed {:.1}%, shed by open breakers {:.1}%",
        ok + failed + shed,
        (ok + failed + shed) as f64 / elapsed.as_secs_f64(),
        100.0 * ok as f64 / calls as f64,
        100.0 * failed as f64 / calls as f64,
        100.0 * shed as f64 / calls as f64
    );
    let path: Vec<String> = std::iter::once("HEALTHY at 0.0s".to_owned())
        .chain(
            timeline
                .lock()
                .map(|t| {
                    t.iter()
                        .map(|(at, s, _)| format!("{} at {at:.1}s", s.as_str()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .collect();
    println!("  health       {}", path.join(" → "));
    println!(
        "               final {} (score {:.2})",
        final_report.status.as_str(),
        final_report.score
    );
    let mut opens: Vec<String> = Vec::new();
    for dependency in dependencies.iter() {
        let times: u64 = transitions
            .iter()
            .filter(|t| &*t.breaker == dependency.name && t.to == State::Open)
            .map(|t| t.count)
            .sum();
        if times > 0 {
            opens.push(format!("{} opened {times}×", dependency.name));
        }
    }
    println!(
        "  breakers     {}",
        if opens.is_empty() {
            "none opened".to_owned()
        } else {
            opens.join(", ")
        }
    );
    println!(
        "  recovery     {} attempts: {} succeeded, {} failed while chaos lasted",
        recovery.attempts, recovery.succeeded, recovery.failed
    );
    let injected: Vec<String> = chaos
        .injections
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "  chaos        {} scenarios, {} expired on time; injected {}",
        chaos.started,
        chaos.expired,
        injected.join(", ")
    );
    match &ledger {
        Some(ledger) => {
            println!(
                "  metering     {} → {}",
                crate::serve::ledger_line(ledger),
                parts.destination
            );
            println!(
                "               one event per call that reached its dependency (ok or failed); calls shed by an open breaker are not metered{}",
                if ledger.inherited > 0 {
                    format!(
                        "; inherited {} are events an earlier run left, delivered now",
                        ledger.inherited
                    )
                } else {
                    String::new()
                }
            );
        }
        None => println!("  metering     {}", parts.destination),
    }
    println!(
        "\n  hot path, ns per call (each call timed alone with the TSC; includes ~10-20 ns of timer overhead):"
    );
    crate::bench::header("");
    crate::bench::row(
        "before the call: chaos check + breaker acquire",
        &ps(&timings.before)?,
    );
    crate::bench::row(
        "after the call: outcome + meter record",
        &ps(&timings.after)?,
    );
    crate::bench::row("total resilience overhead per call", &ps(&timings.total)?);
    println!("\n  (`resilience bench` measures each path in batches, without the timer overhead)");
    let recovered = final_report.status == HealthStatus::Healthy;
    let fell = timeline
        .lock()
        .map(|t| t.iter().any(|(_, s, _)| *s != HealthStatus::Healthy))
        .unwrap_or(false);
    if !(fell && recovered) {
        println!(
            "\nnote: health {} and {}; on a busy machine try a longer --duration",
            if fell { "fell" } else { "never fell" },
            if recovered {
                "recovered"
            } else {
                "had not recovered by the end"
            }
        );
    }
    Ok(())
}

/// The histogram in picoseconds, as the shared report rows expect.
fn ps(ns: &Histogram<u64>) -> Result<Histogram<u64>, Error> {
    let mut out = Histogram::<u64>::new_with_bounds(1, 10_000_000_000_000, 3)?;
    for v in ns.iter_recorded() {
        out.record_n(
            v.value_iterated_to().saturating_mul(1_000),
            v.count_at_value(),
        )?;
    }
    Ok(out)
}

fn dependencies(parts: &Parts, config: &ResilienceConfig) -> Result<Vec<Arc<Dependency>>, Error> {
    DEPENDENCIES
        .iter()
        .map(|&(name, error_rate, latency)| {
            // Short OPEN times so the demo's breakers probe on their own too.
            let breaker_config = BreakerConfig::builder()
                .fail_max(5)
                .reset_timeout(Duration::from_secs(1))
                .max_reset_timeout(Duration::from_secs(4))
                .governance(config.constitutional_hash)
                .build()?;
            Ok(Arc::new(Dependency {
                name,
                error_rate,
                latency,
                breaker: parts.registry.get_or_create(name, breaker_config)?,
                point: parts.table.point(name)?,
                ok: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                shed: AtomicU64::new(0),
            }))
        })
        .collect()
}

fn control_plane(
    parts: &Parts,
    config: &ResilienceConfig,
    dependencies: &[Arc<Dependency>],
) -> Result<ControlPlane, Error> {
    let policy = RecoveryPolicy::with_strategy(RecoveryStrategy::ExponentialBackoff)
        .initial_delay(Duration::from_millis(500))
        .max_delay(Duration::from_secs(2))
        .max_retries(50)
        .health_check_timeout(Duration::from_secs(1));
    let mut builder = ControlPlane::builder()
        .registry(parts.registry.clone())
        .governance(config.constitutional_hash)
        .health(
            HealthConfig::default()
                .interval(Duration::from_millis(250))
                .governance(config.constitutional_hash),
        )
        .recovery(
            RecoveryConfig::default()
                .default_policy(policy)
                .governance(config.constitutional_hash),
        )
        .chaos(parts.chaos.clone());
    if let Some(flusher) = &parts.flusher {
        builder = builder.metering(flusher.clone());
    }
    for dependency in dependencies {
        // The recovery health check asks the dependency itself (here: is chaos still breaking
        // it?), off the request path.
        let (table, point) = (parts.table.clone(), dependency.point);
        builder = builder.health_check(dependency.name, move |_service: String| {
            let verdict = match table.check(point) {
                Some(fault @ (Fault::Partition | Fault::Error(_) | Fault::Timeout(_))) => {
                    Err(format!("still failing: {fault:?}"))
                }
                _ => Ok(()),
            };
            async move { verdict }
        });
    }
    Ok(builder.spawn()?)
}

/// The chaos: payments unreachable, inventory failing 70% of calls, search slow for half.
fn strike(parts: &Parts, duration: Duration) -> Result<(), Error> {
    let chaos = &parts.chaos;
    chaos.partition("payments").duration(duration).start()?;
    chaos
        .inject_errors("inventory", 0.7, ErrorCode(503))
        .duration(duration)
        .start()?;
    chaos
        .inject_latency("search", Duration::from_millis(40))
        .rate(0.5)
        .duration(duration)
        .start()?;
    println!(
        "  ⚡ chaos for {:.1} s: payments partitioned, inventory failing 70%, search +40 ms on half its calls",
        duration.as_secs_f64()
    );
    Ok(())
}

fn progress(
    control: &ControlPlane,
    parts: &Parts,
    dependencies: &[Arc<Dependency>],
    started: Instant,
    last_calls: u64,
    since: Duration,
) -> u64 {
    let report = control.health().report();
    let calls: u64 = dependencies
        .iter()
        .map(|d| {
            d.ok.load(Ordering::Relaxed)
                + d.failed.load(Ordering::Relaxed)
                + d.shed.load(Ordering::Relaxed)
        })
        .sum();
    let states: Vec<String> = dependencies
        .iter()
        .map(|d| format!("{} {:<9}", d.name, d.breaker.state().as_str()))
        .collect();
    let active = parts.chaos.active().len();
    let metered = match &parts.flusher {
        None => "metering off".to_owned(),
        Some(flusher) => match flusher.sink_health() {
            SinkHealth::Up => format!("metered {}", flusher.ledger().flushed),
            _ => format!(
                "metering DEGRADED ({} down, {} spooled)",
                flusher.sink_name(),
                flusher.ledger().spooled
            ),
        },
    };
    println!(
        "  [{:>5.1}s] {:<8} {:.2} | {} | {:>6.0} calls/s | chaos {} | {metered}",
        started.elapsed().as_secs_f64(),
        report.status.as_str(),
        report.score,
        states.join(" "),
        (calls - last_calls) as f64 / since.as_secs_f64().max(1e-3),
        if active == 0 {
            "off".to_owned()
        } else {
            format!("{active} active")
        },
    );
    calls
}

/// Says when metering's sink goes down (events then wait in the spool) and when it is back.
fn metering_news(parts: &Parts, down: &mut bool) {
    let Some(flusher) = &parts.flusher else {
        return;
    };
    match flusher.sink_health() {
        SinkHealth::Down { since, error } if !*down => {
            *down = true;
            let for_ = since.elapsed().unwrap_or_default().as_secs_f64();
            println!(
                "  ▾ metering DEGRADED for {for_:.1}s: {} unreachable ({error}); {} events spooled so far",
                flusher.sink_name(),
                flusher.ledger().spooled
            );
        }
        SinkHealth::Up if *down => {
            *down = false;
            println!(
                "  ▴ metering back: {} answering, spool replayed",
                flusher.sink_name()
            );
        }
        _ => {}
    }
}

fn watch_health(
    mut changes: tokio::sync::broadcast::Receiver<HealthChange>,
    started: Instant,
    timeline: Arc<std::sync::Mutex<Vec<(f64, HealthStatus, f64)>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.from == HealthStatus::Unknown {
                continue;
            }
            let at = started.elapsed().as_secs_f64();
            println!(
                "  ▸ health {} → {} (score {:.2})",
                change.from.as_str(),
                change.to.as_str(),
                change.report.score
            );
            if let Ok(mut t) = timeline.lock() {
                t.push((at, change.to, change.report.score));
            }
        }
    })
}

/// One worker: calls the dependencies in turn until told to stop, timing the hot path.
async fn worker(
    seed: u64,
    dependencies: &[Arc<Dependency>],
    table: &FaultTable,
    hooks: &resilience_control::metering::MeteringHooks,
    running: &AtomicBool,
) -> Result<Timings, Error> {
    let clock = quanta::Clock::new();
    let mut timings = Timings::new()?;
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut n = 0usize;
    while running.load(Ordering::Relaxed) {
        let dependency = &dependencies[n % dependencies.len()];
        n += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let draw = (rng >> 11) as f64 / (1u64 << 53) as f64;

        let t0 = clock.raw();
        let fault = table.check(dependency.point);
        let permit = dependency.breaker.try_acquire();
        let t1 = clock.raw();
        let Ok(permit) = permit else {
            dependency.shed.fetch_add(1, Ordering::Relaxed);
            timings
                .before
                .saturating_record(clock.delta_as_nanos(t0, t1).max(1));
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // The call itself (not timed): normal latency and failure rate, or the injected fault.
        let called = Instant::now();
        let success = match fault {
            None => {
                tokio::time::sleep(dependency.latency).await;
                draw >= dependency.error_rate
            }
            Some(Fault::Latency(extra)) => {
                tokio::time::sleep(dependency.latency + extra).await;
                true
            }
            Some(Fault::Timeout(after)) => {
                tokio::time::sleep(after.min(Duration::from_millis(50))).await;
                false
            }
            Some(_) => {
                tokio::time::sleep(Duration::from_micros(200)).await;
                false
            }
        };
        let took = called.elapsed();
        let t2 = clock.raw();
        if success {
            permit.success();
        } else {
            permit.failure();
        }
        let _ = hooks
            .event(Operation::AgentMessage, "demo-tenant", dependency.name)
            .tokens(256)
            .latency(took)
            .outcome(Outcome::of(success))
            .record();
        let t3 = clock.raw();
        let (before, after) = (clock.delta_as_nanos(t0, t1), clock.delta_as_nanos(t2, t3));
        timings.before.saturating_record(before.max(1));
        timings.after.saturating_record(after.max(1));
        timings.total.saturating_record((before + after).max(1));
        if success {
            dependency.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            dependency.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(timings)
}

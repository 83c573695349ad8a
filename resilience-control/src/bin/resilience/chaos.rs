//! `resilience chaos list|inject|end|stop|resume` against a running instance's HTTP endpoints,
//! or with `--fleet` against the whole fleet's state in Redis.

use std::path::Path;
use std::time::Duration;

use resilience_control::ResilienceConfig;
use resilience_control::fleet::{Fleet, FleetConfig, FleetFault, FleetScenario};

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::Error;

#[derive(Subcommand, Debug)]
pub(crate) enum Action {
    /// Lists live scenarios with their time left and injections (with --fleet: the fleet's
    /// scenarios, live instances and health).
    List,
    /// Emergency stop: every scenario off at once, forced breakers restored, resource holds
    /// released; chaos stays off until `resume` (with --fleet: on every instance, including
    /// those started later).
    Stop,
    /// Allows chaos again after an emergency stop (with --fleet: lifts the fleet's stop).
    Resume,
    /// Starts a scenario on the instance at --url, checked against its chaos limits (with
    /// --fleet: on a share of every instance, persisted so instances started later join it).
    /// It ends on its own after --for.
    Inject(Inject),
    /// Ends a scenario by name before its time (with --fleet: a fleet scenario).
    End {
        /// The scenario's name.
        name: String,
    },
}

/// One fault, for how long, on what share of the instances.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("fault").required(true).args(["latency", "errors", "timeouts", "partition", "force_open"])))]
pub(crate) struct Inject {
    /// Unique scenario name.
    name: String,
    /// The chaos point or breaker it hits.
    #[arg(long)]
    target: String,
    /// Add this latency (e.g. 200ms).
    #[arg(long, value_parser = crate::duration)]
    latency: Option<Duration>,
    /// Fail this share of calls, in [0, 1].
    #[arg(long)]
    errors: Option<f64>,
    /// Error code for --errors.
    #[arg(long, default_value_t = 503)]
    code: u16,
    /// Fail calls as timed out after this long (e.g. 2s).
    #[arg(long, value_parser = crate::duration)]
    timeouts: Option<Duration>,
    /// Make the target unreachable.
    #[arg(long)]
    partition: bool,
    /// Force the target's breaker open.
    #[arg(long)]
    force_open: bool,
    /// How long it lasts.
    #[arg(long = "for", value_parser = crate::duration, default_value = "60s")]
    duration: Duration,
    /// With --fleet: at most this share of the live instances take part, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    share: f64,
}

impl Inject {
    fn fault(&self) -> Result<FleetFault, Error> {
        Ok(match (self.latency, self.errors, self.timeouts) {
            (Some(latency), _, _) => FleetFault::Latency {
                ms: latency.as_millis() as u64,
            },
            (_, Some(rate), _) => {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(
                        format!("--errors {rate}: expected a share of calls in [0, 1]").into(),
                    );
                }
                FleetFault::Errors {
                    rate,
                    code: self.code,
                }
            }
            (_, _, Some(after)) => FleetFault::Timeouts {
                after_ms: after.as_millis() as u64,
            },
            _ if self.partition => FleetFault::Partition,
            _ => FleetFault::ForceOpen,
        })
    }
}

/// The admin token for an instance's state-changing endpoints: `RESILIENCE_ADMIN_TOKEN`, or the
/// configuration's `http.admin_token` / `http.admin_token_file`.
fn admin_token(config: Option<&Path>) -> Option<String> {
    if let Ok(token) = std::env::var("RESILIENCE_ADMIN_TOKEN")
        && !token.is_empty()
    {
        return Some(token);
    }
    let config = ResilienceConfig::load(config).ok()?;
    let http = config.http_config().ok()?;
    http.admin_token.map(|t| t.expose().to_owned())
}

pub(crate) async fn run(action: Action, url: &str, config: Option<&Path>) -> Result<(), Error> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = url.trim_end_matches('/');
    let mutate = |request: reqwest::RequestBuilder| {
        // The token authenticates; the JSON type is what a cross-site form can never send.
        let request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}");
        match admin_token(config) {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let request = match &action {
        Action::List => client.get(format!("{base}/chaos")),
        Action::Stop => mutate(client.post(format!("{base}/chaos/stop"))),
        Action::Resume => mutate(client.post(format!("{base}/chaos/resume"))),
        Action::End { name } => mutate(client.delete(format!("{base}/chaos/{name}"))),
        Action::Inject(inject) => {
            if inject.share != 1.0 {
                return Err("--share is the fleet's blast radius: use it with --fleet".into());
            }
            let body = serde_json::json!({
                "name": inject.name,
                "target": inject.target,
                "fault": inject.fault()?,
                "duration_ms": inject.duration.as_millis() as u64,
            });
            mutate(client.post(format!("{base}/chaos"))).json(&body)
        }
    };
    let response = request.send().await.map_err(|e| {
        format!("no resilience instance answers at {base} ({e}); start one with `resilience serve`")
    })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{base} answered {status} without JSON: {e}"))?;
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no detail");
        return Err(format!("{base} answered {status}: {message}").into());
    }
    match action {
        Action::List => print_list(&body),
        Action::Stop => {
            let s = &body["stopped"];
            println!(
                "emergency stop: {} scenario(s) ended, {} breaker(s) restored, {} resource hold(s) released",
                s["scenarios"], s["breakers_restored"], s["resources_released"]
            );
            println!("chaos stays stopped until `resilience chaos resume`");
        }
        Action::Resume => println!("chaos resumed"),
        Action::End { name } => println!("scenario {name} ended"),
        Action::Inject(inject) => println!(
            "scenario {} on {} for {:.1}s (ends on its own; `resilience chaos end {}` ends it sooner)",
            inject.name,
            inject.target,
            inject.duration.as_secs_f64(),
            inject.name
        ),
    }
    Ok(())
}

pub(crate) async fn run_fleet(action: Action, config: Option<&Path>) -> Result<(), Error> {
    let config = ResilienceConfig::load(config)?;
    let url = config
        .redis_url
        .clone()
        .ok_or("--fleet needs Redis: set REDIS_URL or redis_url in the configuration")?;
    let operator = format!("resilience-cli-{}", std::process::id());
    // Lazy: `list` only reads, and never writes the fleet's keys (not even its governance tag);
    // the writes below assert the tag themselves first.
    let fleet = Fleet::lazy(
        FleetConfig::new(operator.clone())
            .namespace(config.namespace.clone())
            .redis_url(url.clone())
            .governance(config.constitutional_hash),
    )?;
    let url = resilience_control::redact_url(&url);
    match action {
        Action::Stop => {
            fleet.emergency_stop(&operator).await?;
            println!(
                "fleet emergency stop set in {url} (namespace {}): every instance stops its chaos within one publish period, and instances started later start stopped",
                config.namespace
            );
            println!("chaos stays stopped fleet-wide until `resilience chaos resume --fleet`");
        }
        Action::Resume => {
            fleet.resume().await?;
            println!("fleet chaos resumed");
        }
        Action::Inject(inject) => {
            if inject.duration.is_zero() {
                return Err("--for 0s: a scenario needs a duration".into());
            }
            let scenario = FleetScenario::new(
                inject.name.clone(),
                inject.target.clone(),
                inject.fault()?,
                inject.duration,
            )
            .share(inject.share);
            fleet.start_scenario(&scenario).await?;
            println!(
                "fleet scenario {} on {} for {:?} (at most {:.0}% of the live instances); each instance checks it against its own chaos limits and refuses it where chaos is disabled",
                inject.name,
                inject.target,
                inject.duration,
                inject.share * 100.0
            );
        }
        Action::End { name } => {
            if fleet.stop_scenario(&name).await? {
                println!("fleet scenario {name} ended");
            } else {
                return Err(format!("no fleet scenario named {name:?}").into());
            }
        }
        Action::List => {
            let health = fleet.fleet_health().await?;
            let chaos = fleet.chaos_state().await?;
            println!(
                "fleet {}: {} live instance(s), worst {}, mean score {}",
                config.namespace,
                health.live(),
                health.worst,
                health
                    .mean_score
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))
            );
            for silent in &health.silent {
                println!("  silent: {}", silent.instance);
            }
            for foreign in &health.foreign {
                println!(
                    "  REFUSED: {foreign} carries another governance tag (not counted anywhere)"
                );
            }
            match &chaos.stopped {
                Some(stop) => println!("chaos: EMERGENCY-STOPPED by {}", stop.by),
                None => println!("chaos: running"),
            }
            if chaos.scenarios.is_empty() {
                println!("no fleet scenarios");
            }
            let rows: Vec<[String; 4]> = chaos
                .scenarios
                .iter()
                .map(|s| {
                    [
                        s.name.clone(),
                        s.target.clone(),
                        format!("{:.2}", s.share),
                        format!("{:.1}s", s.remaining().as_secs_f64()),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print!("{}", table(["NAME", "TARGET", "SHARE", "LEFT"], &rows, 2));
            }
        }
    }
    Ok(())
}

fn print_list(body: &Value) {
    let metrics = &body["metrics"];
    println!(
        "chaos: {}{}",
        if metrics["enabled"] == true {
            "enabled"
        } else {
            "disabled by configuration"
        },
        if metrics["stopped"] == true {
            ", EMERGENCY-STOPPED"
        } else {
            ""
        }
    );
    let empty = Vec::new();
    let active = body["active"].as_array().unwrap_or(&empty);
    if active.is_empty() {
        println!("no active scenarios");
    } else {
        let rows: Vec<[String; 6]> = active
            .iter()
            .map(|a| {
                [
                    a["name"].as_str().unwrap_or("?").to_owned(),
                    a["kind"].as_str().unwrap_or("?").to_owned(),
                    a["target"].as_str().unwrap_or("?").to_owned(),
                    format!("{:.1}s", a["remaining_ms"].as_f64().unwrap_or(0.0) / 1000.0),
                    format!("{:.2}", a["rate"].as_f64().unwrap_or(0.0)),
                    a["injections"].as_u64().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                ["NAME", "KIND", "TARGET", "LEFT", "RATE", "INJECTED"],
                &rows,
                3
            )
        );
    }
    if let Some(injections) = metrics["injections"].as_object() {
        let line: Vec<String> = injections
            .iter()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        if !line.is_empty() {
            println!("injections so far: {}", line.join(", "));
        }
    }
}

/// Columns as wide as their widest cell; the first `text_columns` left-aligned, the rest (numbers)
/// right-aligned.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], text_columns: usize) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = " ".repeat(width - cell.chars().count());
            if i < text_columns {
                out.push_str(cell);
                if i + 1 < N {
                    out.push_str(&pad);
                }
            } else {
                out.push_str(&pad);
                out.push_str(cell);
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_line_up_whatever_the_lengths() {
        let rows = [
            [
                "a-rather-long-scenario-name-that-is-longer-than-32".to_owned(),
                "7".to_owned(),
            ],
            ["x".to_owned(), "12345".to_owned()],
        ];
        let text = table(["NAME", "N"], &rows, 1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "{text}"
        );
        assert!(
            lines[2].ends_with("12345") && lines[1].ends_with("    7"),
            "{text}"
        );
    }
}

//! The `resilience` binary as a user runs it: the demo end to end (JSONL metering, health
//! falling and recovering, a summary with percentiles), `serve` answering HTTP and `chaos
//! list|stop` against it, a graceful SIGTERM, `bench`, and clear errors for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{RedisServer, TempDir};

fn resilience(dir: &TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resilience"));
    command.current_dir(&dir.0);
    // The machine's own settings must not leak into the test.
    for variable in [
        "REDIS_URL",
        "METERING_ENABLED",
        "HEALTH_CHECK_INTERVAL_SECONDS",
        "RECOVERY_MAX_RETRY_ATTEMPTS",
        "CHAOS_MAX_DURATION_SECONDS",
        "CHAOS_ENABLED",
        "CONSTITUTIONAL_HASH",
        "RESILIENCE_CONFIG",
        "RESILIENCE_URL",
        "RESILIENCE_HTTP_LISTEN",
        "RESILIENCE_NAMESPACE",
        "RESILIENCE_INSTANCE",
        "RESILIENCE_ENVIRONMENT",
        "RESILIENCE_ADMIN_TOKEN",
        "RESILIENCE_ADMIN_TOKEN_FILE",
        "FLEET_ENABLED",
        "HEALTH_ENABLED",
        "PAGERDUTY_ROUTING_KEY",
    ] {
        command.env_remove(variable);
    }
    command
}

/// The admin token the served instances in these tests require.
const TOKEN: &str = "cli-test-admin-token-0123";

/// `resilience` with the admin token in its environment, as an operator's shell has it.
fn operator(dir: &TempDir) -> Command {
    let mut command = resilience(dir);
    command.env("RESILIENCE_ADMIN_TOKEN", TOKEN);
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_demo_runs_an_outage_and_recovery_and_meters_every_call() {
    let dir = TempDir::new("cli-demo");
    let output = resilience(&dir)
        .args([
            "demo",
            "--duration",
            "8s",
            "--every",
            "500ms",
            "--sink",
            "jsonl",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "metering:     JSONL file resilience-usage.jsonl",
        "chaos for",
        // Straight to CRITICAL, or through DEGRADED when the breakers open in different samples.
        "→ CRITICAL",
        "summary after",
        "final HEALTHY",
        "total resilience overhead per call",
        "p99.9",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Every accepted event is in the file, once.
    let summary = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("metering "))
        .unwrap();
    let flushed: u64 = summary
        .split("flushed ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let lines = std::fs::read_to_string(dir.0.join("resilience-usage.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(flushed > 1_000, "{summary}");
    assert_eq!(lines, flushed, "{summary}");
    assert!(summary.contains("refused 0"), "{summary}");
    assert!(
        stdout.contains("calls shed by an open breaker are not metered"),
        "says which calls are metered:\n{stdout}"
    );
    // The summary's metered calls are the calls that reached a dependency.
    let calls: u64 = stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("calls"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no calls line in:\n{stdout}"));
    assert!(calls >= flushed, "{calls} calls, {flushed} metered");
}

#[test]
fn with_metering_off_nothing_is_metered_and_no_file_is_made() {
    let dir = TempDir::new("cli-metering-off");
    let output = resilience(&dir)
        .args([
            "demo",
            "--duration",
            "4s",
            "--every",
            "500ms",
            "--sink",
            "jsonl",
        ])
        .env("METERING_ENABLED", "false")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("metering:     off"), "{stdout}");
    assert!(
        stdout.contains("metering off"),
        "the live line says so:\n{stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "no spool directory, ring file or usage file: {left:?}"
    );
}

#[test]
fn serve_answers_http_and_chaos_commands_then_stops_on_sigterm() {
    let dir = TempDir::new("cli-serve");
    std::fs::write(
        dir.0.join("resilience.toml"),
        format!(
            "environment = \"development\"\n[http]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n[chaos]\nenabled = true\n[[breakers]]\nname = \"payments\"\n"
        ),
    )
    .unwrap();
    let (mut child, url, mut stdout) = serve(&dir, "resilience.toml");

    let chaos_with = |args: &[&str]| {
        let output = operator(&dir)
            .arg("chaos")
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        let (out, err) = text(&output);
        assert!(output.status.success(), "chaos {args:?}: {out}\n{err}");
        out
    };
    let chaos = |action: &str| chaos_with(&[action]);
    let list = chaos("list");
    assert!(
        list.contains("chaos: enabled") && list.contains("no active scenarios"),
        "{list}"
    );
    // One instance's scenario, from the command line; the list's columns line up.
    let started = chaos_with(&[
        "inject",
        "a-scenario-with-a-name-longer-than-thirty-two-characters",
        "--target",
        "payments",
        "--errors",
        "0.5",
        "--for",
        "30s",
    ]);
    assert!(started.contains("for 30.0s"), "{started}");
    let list = chaos("list");
    let rows: Vec<&str> = list
        .lines()
        .skip_while(|l| !l.starts_with("NAME"))
        .take(2)
        .collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(
        rows[0].find("KIND"),
        rows[1].find("ERROR"),
        "aligned columns:\n{list}"
    );
    assert!(rows[1].contains("0.50"), "{list}");
    let ended = chaos_with(&[
        "end",
        "a-scenario-with-a-name-longer-than-thirty-two-characters",
    ]);
    assert!(ended.contains("ended"), "{ended}");
    assert!(chaos("list").contains("no active scenarios"));

    let stop = chaos("stop");
    assert!(stop.contains("emergency stop"), "{stop}");
    assert!(chaos("list").contains("EMERGENCY-STOPPED"));
    chaos("resume");
    assert!(!chaos("list").contains("EMERGENCY-STOPPED"));

    let ready = reqwest::blocking_get(&format!("{url}/health/ready"));
    assert_eq!(ready, 200);

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "{status:?}\n{rest}");
    assert!(rest.contains("shutting down"), "{rest}");
}

/// Starts `resilience serve` with `config`: the process, its HTTP address, and the rest of its
/// standard output.
fn serve(
    dir: &TempDir,
    config: &str,
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = resilience(dir)
        .args(["serve", "--config", config])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (child, url, stdout)
}

#[test]
fn chaos_stop_with_fleet_stops_every_instance_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = TempDir::new("cli-fleet");
    for name in ["a", "b"] {
        std::fs::write(
            dir.0.join(format!("{name}.toml")),
            format!(
                "redis_url = \"{}\"\nnamespace = \"clifleet\"\nenvironment = \"staging\"\n[http]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n[metering]\nspool_dir = \"spool-{name}\"\n[chaos]\nenabled = true\n[fleet]\nenabled = true\ninstance = \"{name}\"\npublish_seconds = 0.1\nreport_ttl_seconds = 1.0\n[[breakers]]\nname = \"payments\"\n",
                redis.url()
            ),
        )
        .unwrap();
    }
    // Hold the stdout pipes: a closed pipe would fail the servers' next print.
    let (mut a, url_a, _a_out) = serve(&dir, "a.toml");
    let (mut b, url_b, _b_out) = serve(&dir, "b.toml");
    let cli = |args: &[&str]| {
        let output = operator(&dir).args(args).output().unwrap();
        let (out, err) = text(&output);
        assert!(output.status.success(), "{args:?}: {out}\n{err}");
        out
    };
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    eventually("both instances live", &|| {
        cli(&["chaos", "list", "--fleet", "-c", "a.toml"]).contains("2 live instance(s)")
    });

    let stop = cli(&["chaos", "stop", "--fleet", "-c", "a.toml"]);
    assert!(stop.contains("fleet emergency stop set"), "{stop}");
    for url in [&url_a, &url_b] {
        eventually("the instance to stop", &|| {
            cli(&["chaos", "list", "--url", url]).contains("EMERGENCY-STOPPED")
        });
    }
    assert!(cli(&["chaos", "list", "--fleet", "-c", "b.toml"]).contains("EMERGENCY-STOPPED"));

    // One instance's resume cannot lift the fleet's stop (HTTP 409, said plainly).
    let local = operator(&dir)
        .args(["chaos", "resume", "--url", &url_a])
        .output()
        .unwrap();
    let (_, err) = text(&local);
    assert_eq!(local.status.code(), Some(1));
    assert!(
        err.contains("409") && err.contains("resilience chaos resume --fleet"),
        "{err}"
    );
    assert!(cli(&["chaos", "list", "--url", &url_a]).contains("EMERGENCY-STOPPED"));

    cli(&["chaos", "resume", "--fleet", "-c", "b.toml"]);
    for url in [&url_a, &url_b] {
        eventually("the instance to resume", &|| {
            !cli(&["chaos", "list", "--url", url]).contains("EMERGENCY-STOPPED")
        });
    }

    // A fleet scenario from the command line reaches every instance, and ends everywhere.
    let started = cli(&[
        "chaos",
        "inject",
        "slow-payments",
        "--fleet",
        "-c",
        "a.toml",
        "--target",
        "payments",
        "--latency",
        "50ms",
        "--for",
        "30s",
    ]);
    assert!(
        started.contains("fleet scenario slow-payments"),
        "{started}"
    );
    for url in [&url_a, &url_b] {
        eventually("the scenario to run", &|| {
            cli(&["chaos", "list", "--url", url]).contains("slow-payments")
        });
    }
    assert!(cli(&["chaos", "list", "--fleet", "-c", "b.toml"]).contains("slow-payments"));
    cli(&["chaos", "end", "slow-payments", "--fleet", "-c", "b.toml"]);
    for url in [&url_a, &url_b] {
        eventually("the scenario to end", &|| {
            !cli(&["chaos", "list", "--url", url]).contains("slow-payments")
        });
    }
    let bad = resilience(&dir)
        .args([
            "chaos", "inject", "x", "--fleet", "-c", "a.toml", "--target", "payments", "--errors",
            "1.5",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&bad);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err.contains("--errors 1.5"), "{err}");
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A tiny blocking GET (the tests avoid pulling in reqwest's blocking feature).
mod reqwest {
    pub(super) fn blocking_get(url: &str) -> u16 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { ::reqwest::get(url).await.unwrap().status().as_u16() })
    }
}

#[test]
fn a_bad_configuration_is_refused_naming_the_key_and_value() {
    let dir = TempDir::new("cli-bad");
    std::fs::write(dir.0.join("bad.toml"), "[recovery]\nmultiplier = 0.5\n").unwrap();
    let output = resilience(&dir)
        .args(["serve", "-c", "bad.toml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("recovery.multiplier = 0.5"), "{stderr}");

    let output = resilience(&dir)
        .args(["demo", "--duration", "8s"])
        .env("HEALTH_CHECK_INTERVAL_SECONDS", "often")
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("HEALTH_CHECK_INTERVAL_SECONDS=\"often\""),
        "{stderr}"
    );

    let output = resilience(&dir)
        .args(["demo", "--duration", "soon"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(
        stderr.contains("--duration") && stderr.contains("soon"),
        "{stderr}"
    );
}

#[test]
fn chaos_commands_say_when_nothing_answers() {
    let dir = TempDir::new("cli-nothing");
    let port = support::free_port();
    let output = resilience(&dir)
        .args([
            "chaos",
            "list",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("no resilience instance answers"),
        "{stderr}"
    );
}

#[test]
fn bench_reports_percentiles_for_each_hot_path() {
    let dir = TempDir::new("cli-bench");
    let output = resilience(&dir)
        .args(["bench", "--per-case", "50ms"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    for row in [
        "breaker CLOSED: try_acquire + success",
        "breaker OPEN: rejection",
        "chaos check, nothing armed",
        "meter record (192-byte event)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no {row:?} in {stdout}"));
        let p50: f64 = line[line.find(row).unwrap() + row.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(p50 > 0.0 && p50 < 10_000.0, "{line}");
    }
}

/// The `flushed N` figure of the demo's summary line.
fn summary_figure(stdout: &str, key: &str) -> u64 {
    let summary = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("metering "))
        .unwrap_or_else(|| panic!("no metering summary in:\n{stdout}"));
    summary
        .split(&format!("{key} "))
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

#[test]
fn an_unreachable_redis_is_reported_and_the_events_wait_for_the_next_run() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = TempDir::new("cli-unreachable");
    let nobody = format!("redis://:S3cretPW@127.0.0.1:{}", support::free_port());
    let output = resilience(&dir)
        .args(["demo", "--duration", "4s", "--every", "1s"])
        .env("REDIS_URL", &nobody)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("is unreachable") && stderr.contains("events go to the spool"),
        "{stderr}"
    );
    assert!(stdout.contains("metering DEGRADED"), "{stdout}");
    assert!(
        !stdout.contains("S3cretPW") && !stderr.contains("S3cretPW"),
        "the password is never printed"
    );
    let spooled = summary_figure(&stdout, "spooled");
    let accepted = summary_figure(&stdout, "accepted");
    assert!(spooled > 100, "{stdout}");
    assert_eq!(spooled, accepted, "everything waits on disk: {stdout}");

    // The next run, with Redis answering, delivers what the first one left, first; and under
    // its own namespace even where the configuration names a production one.
    let output = resilience(&dir)
        .args(["demo", "--duration", "4s", "--every", "1s"])
        .env("REDIS_URL", redis.url())
        .env("RESILIENCE_NAMESPACE", "production")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("delivering {spooled} events")),
        "{stderr}"
    );
    // The test's Redis keeps nothing on disk: said once, clearly.
    assert_eq!(
        stderr
            .matches("keeps nothing across its own restart")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(summary_figure(&stdout, "inherited"), spooled);
    let flushed = summary_figure(&stdout, "flushed");
    let second = summary_figure(&stdout, "accepted");
    assert_eq!(flushed, spooled + second, "{stdout}");
    let len: u64 = redis::cmd("XLEN")
        .arg("{resilience-demo}:meter")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(len, spooled + second, "each event in the stream once");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.connection())
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("{resilience-demo}")),
        "only the demo's namespace: {keys:?}"
    );
}

#[test]
fn sigterm_ends_the_demo_early_and_flushes_every_event() {
    let dir = TempDir::new("cli-demo-term");
    let child = resilience(&dir)
        .args([
            "demo",
            "--duration",
            "60s",
            "--every",
            "500ms",
            "--sink",
            "jsonl",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stdout.contains("signal received"), "{stdout}");
    let flushed = summary_figure(&stdout, "flushed");
    assert_eq!(summary_figure(&stdout, "accepted"), flushed);
    assert_eq!(summary_figure(&stdout, "pending"), 0);
    let lines = std::fs::read_to_string(dir.0.join("resilience-usage.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(flushed > 100);
    assert_eq!(lines, flushed, "every accepted event in the file");
}

#[test]
fn serve_that_cannot_bind_leaves_no_trace() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = TempDir::new("cli-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.0.join("busy.toml"),
        format!(
            "redis_url = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[fleet]\nenabled = true\ninstance = \"x\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let output = resilience(&dir)
        .args(["serve", "-c", "busy.toml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["busy.toml"], "no spool, no ring file");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.connection())
        .unwrap();
    assert!(keys.is_empty(), "nothing in the fleet's Redis: {keys:?}");
}

#[test]
fn a_redis_password_and_the_admin_token_are_never_printed() {
    const PASSWORD: &str = "S3cretPW";
    const SECRET_TOKEN: &str = "Tok3nSecret-0123456789";
    const ROUTING_KEY: &str = "R0utingKeySecret42";
    let Some(redis) = RedisServer::start_with_acl_user("app", PASSWORD) else {
        return;
    };
    let url = redis.url();
    let nowhere = format!("redis://app:{PASSWORD}@127.0.0.1:{}", support::free_port());
    let dir = TempDir::new("cli-secrets");
    let seen = std::cell::RefCell::new(String::new());
    let run = |command: &mut Command| {
        let output = command.output().unwrap();
        let (out, err) = text(&output);
        seen.borrow_mut().push_str(&out);
        seen.borrow_mut().push_str(&err);
        if !output.status.success() {
            eprintln!("{command:?} failed:\n{out}\n{err}");
        }
        output.status.success()
    };

    // The demo, logging everything, into Redis and into a Redis that is not there.
    for target in [&url, &nowhere] {
        assert!(run(resilience(&dir)
            .args(["demo", "--duration", "4s", "--every", "1s"])
            .env("REDIS_URL", target)
            .env("RUST_LOG", "trace")));
    }
    // Configuration errors, from the environment and from the file.
    assert!(!run(resilience(&dir).args(["serve"]).env(
        "REDIS_URL",
        format!("redis://app:{PASSWORD}@127.0.0.1:notaport")
    )));
    std::fs::write(
        dir.0.join("broken.toml"),
        format!("redis_url = \"redis://app:{PASSWORD}@127.0.0.1:6379\n"),
    )
    .unwrap();
    assert!(!run(resilience(&dir).args(["serve", "-c", "broken.toml"])));
    std::fs::write(
        dir.0.join("short.toml"),
        format!("[http]\nadmin_token = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    assert!(!run(resilience(&dir).args(["serve", "-c", "short.toml"])));

    // A served instance in a fleet, with its token in a file; every endpoint read.
    std::fs::write(dir.0.join("token"), SECRET_TOKEN).unwrap();
    std::fs::write(
        dir.0.join("fleet.toml"),
        format!(
            "redis_url = \"{url}\"\nenvironment = \"development\"\n[http]\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"token\"\n[chaos]\nenabled = true\n[fleet]\nenabled = true\ninstance = \"s\"\npublish_seconds = 0.1\nreport_ttl_seconds = 1.0\n[metering]\nspool_dir = \"spool-s\"\n[health]\npagerduty_url = \"http://127.0.0.1:1/\"\nalert_on = [\"health\", \"breaker_opened\", \"recovery_exhausted\"]\n"
        ),
    )
    .unwrap();
    let mut child = resilience(&dir)
        .args(["serve", "-c", "fleet.toml"])
        .env("RUST_LOG", "debug")
        .env("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    seen.borrow_mut().push_str(&first);
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for path in [
        "/metrics",
        "/health",
        "/breakers",
        "/recovery",
        "/chaos",
        "/metering",
    ] {
        let body = runtime.block_on(async {
            ::reqwest::get(format!("{base}{path}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        seen.borrow_mut().push_str(&body);
    }
    let operator = |args: &[&str]| {
        let mut command = resilience(&dir);
        command
            .args(args)
            .env("RESILIENCE_ADMIN_TOKEN", SECRET_TOKEN);
        command
    };
    assert!(run(&mut operator(&["chaos", "list", "--url", &base])));
    assert!(run(&mut operator(&["chaos", "stop", "--url", &base])));
    assert!(run(&mut operator(&["chaos", "resume", "--url", &base])));
    for action in ["list", "stop", "resume"] {
        assert!(run(&mut operator(&[
            "chaos",
            action,
            "--fleet",
            "-c",
            "fleet.toml"
        ])));
    }
    std::fs::write(
        dir.0.join("gone.toml"),
        format!("redis_url = \"{nowhere}\"\n"),
    )
    .unwrap();
    assert!(!run(&mut operator(&[
        "chaos",
        "stop",
        "--fleet",
        "-c",
        "gone.toml"
    ])));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.borrow_mut().push_str(&rest);
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut rest).unwrap();
    seen.borrow_mut().push_str(&rest);

    let seen = seen.into_inner();
    assert!(
        seen.len() > 10_000,
        "the test saw real output ({} bytes)",
        seen.len()
    );
    for secret in [PASSWORD, SECRET_TOKEN, ROUTING_KEY] {
        let at = seen.find(secret);
        assert!(
            at.is_none(),
            "{secret} printed: ...{}...",
            at.map(|i| &seen[i.saturating_sub(200)..(i + 50).min(seen.len())])
                .unwrap_or_default()
        );
    }
}

//! `ResilienceConfig`: a TOML file, the environment over it, and a clear error for every bad
//! value, naming the key or variable and the value.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::collections::HashMap;
use std::time::Duration;

use resilience_control::recovery::RecoveryStrategy;
use resilience_control::{ConfigLoadError, ResilienceConfig};
use resilience_core::GovernanceHash;

const FILE: &str = r#"
namespace = "shop"
constitutional_hash = "cdd01ef066bc6cf2"
redis_url = "redis://10.0.0.5:6380"

[http]
listen = "0.0.0.0:9100"

[health]
interval_seconds = 0.5
history = 60

[recovery]
max_retry_attempts = 3
strategy = "linear_backoff"
initial_delay_ms = 200

[metering]
enabled = false
flush_interval_ms = 250

[chaos]
enabled = true
max_duration_seconds = 120

[[breakers]]
name = "payments"
fail_max = 3
reset_timeout_seconds = 10.0

[[breakers]]
name = "search"
failure_rate = 0.5
window_calls = 20
"#;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<ResilienceConfig, ConfigLoadError> {
    ResilienceConfig::from_toml_str(text, &vars(env))
}

#[test]
fn the_file_sets_every_section() {
    let c = load(FILE, &[]).unwrap();
    assert_eq!(c.namespace, "shop");
    assert_eq!(c.redis_url.as_deref(), Some("redis://10.0.0.5:6380"));
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:9100");
    assert_eq!(
        c.health_config().unwrap().interval,
        Duration::from_millis(500)
    );
    let recovery = c.recovery_config().unwrap();
    assert_eq!(recovery.default_policy.max_retries, 3);
    assert_eq!(
        recovery.default_policy.strategy,
        RecoveryStrategy::LinearBackoff
    );
    assert_eq!(
        recovery.default_policy.initial_delay,
        Duration::from_millis(200)
    );
    assert!(!c.metering.enabled);
    assert_eq!(
        c.metering_config().unwrap().flush_interval,
        Duration::from_millis(250)
    );
    let chaos = c.chaos_config().unwrap();
    assert!(chaos.enabled);
    assert_eq!(chaos.max_duration, Duration::from_secs(120));
    let breakers = c.breaker_configs().unwrap();
    assert_eq!(breakers.len(), 2);
    assert_eq!(breakers[0].0, "payments");
    assert_eq!(breakers[0].1.fail_max(), Some(3));
}

#[test]
fn defaults_need_no_file_and_no_environment() {
    let c = load("", &[]).unwrap();
    assert_eq!(c, ResilienceConfig::default());
    assert_eq!(c.constitutional_hash, GovernanceHash::DEFAULT);
    assert_eq!(c.health_config().unwrap().interval, Duration::from_secs(1));
    assert_eq!(c.recovery_config().unwrap().default_policy.max_retries, 5);
    assert_eq!(
        c.chaos_config().unwrap().max_duration,
        Duration::from_secs(300)
    );
    assert!(
        !c.chaos_config().unwrap().enabled,
        "chaos is off by default"
    );
    assert!(c.redis_url.is_none());
}

#[test]
fn the_environment_wins_over_the_file() {
    let c = load(
        FILE,
        &[
            ("REDIS_URL", "redis://127.0.0.1:7000"),
            ("METERING_ENABLED", "true"),
            ("HEALTH_CHECK_INTERVAL_SECONDS", "2"),
            ("RECOVERY_MAX_RETRY_ATTEMPTS", "9"),
            ("CHAOS_MAX_DURATION_SECONDS", "60"),
            ("CHAOS_ENABLED", "false"),
            ("CONSTITUTIONAL_HASH", "00000000000000ab"),
            ("RESILIENCE_NAMESPACE", "other"),
            ("RESILIENCE_HTTP_LISTEN", "127.0.0.1:9999"),
            ("HEALTH_ENABLED", "false"),
        ],
    )
    .unwrap();
    assert!(!c.health_config().unwrap().enabled);
    assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:7000"));
    assert!(c.metering.enabled);
    assert_eq!(c.health_config().unwrap().interval, Duration::from_secs(2));
    assert_eq!(c.recovery_config().unwrap().default_policy.max_retries, 9);
    assert_eq!(
        c.chaos_config().unwrap().max_duration,
        Duration::from_secs(60)
    );
    assert!(!c.chaos.enabled);
    assert_eq!(c.constitutional_hash.to_string(), "00000000000000ab");
    assert_eq!(
        c.health_config().unwrap().governance.to_string(),
        "00000000000000ab",
        "the tag reaches every component"
    );
    assert_eq!(c.namespace, "other");
    assert_eq!(c.http.listen.port(), 9999);
}

#[test]
fn a_malformed_variable_is_named_with_its_value() {
    for (variable, value) in [
        ("REDIS_URL", "not a url"),
        ("METERING_ENABLED", "perhaps"),
        ("HEALTH_CHECK_INTERVAL_SECONDS", "1s"),
        ("RECOVERY_MAX_RETRY_ATTEMPTS", "-1"),
        ("CHAOS_MAX_DURATION_SECONDS", "five"),
        ("CHAOS_ENABLED", "2"),
        ("HEALTH_ENABLED", "maybe"),
        ("CONSTITUTIONAL_HASH", "xyz"),
        ("RESILIENCE_HTTP_LISTEN", "localhost"),
    ] {
        let err = load("", &[(variable, value)]).unwrap_err();
        match &err {
            ConfigLoadError::Env(e) => {
                assert_eq!((e.variable, e.value.as_str()), (variable, value));
            }
            other => panic!("{variable}: expected an environment error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(variable) && text.contains(value), "{text}");
    }
}

#[test]
fn alert_classes_and_the_routing_key_from_the_environment() {
    use resilience_control::health::AlertClass;
    let c = load("", &[("PAGERDUTY_ROUTING_KEY", "K3Y")]).unwrap();
    assert_eq!(c.health.pagerduty_routing_key.as_deref(), Some("K3Y"));
    assert_eq!(c.alert_classes().unwrap(), AlertClass::DEFAULT);
    assert!(!format!("{c:?}").contains("K3Y"), "never in Debug");
    let c = load("[health]\nalert_on = [\"breaker_opened\"]\n", &[]).unwrap();
    assert_eq!(c.alert_classes().unwrap(), [AlertClass::BreakerOpened]);
    let err = load("[health]\nalert_on = [\"health\", \"sometimes\"]\n", &[]).unwrap_err();
    assert_eq!(err.key(), Some("health.alert_on[1]"), "{err}");
    assert!(err.to_string().contains("\"sometimes\""), "{err}");
}

#[test]
fn the_health_window_is_in_minutes_and_checked() {
    let c = load("[health]\nhistory_window_minutes = 2.5\n", &[]).unwrap();
    assert_eq!(
        c.health_config().unwrap().history_window,
        Duration::from_secs(150)
    );
    assert_eq!(
        load("", &[])
            .unwrap()
            .health_config()
            .unwrap()
            .history_window,
        Duration::from_secs(300)
    );
    for bad in ["0.0", "-1.0"] {
        let c = load(&format!("[health]\nhistory_window_minutes = {bad}\n"), &[]).unwrap_err();
        assert_eq!(c.key(), Some("health.history_window_minutes"), "{c}");
    }
}

#[test]
fn an_out_of_range_variable_names_the_variable() {
    let err = load("", &[("HEALTH_CHECK_INTERVAL_SECONDS", "0")]).unwrap_err();
    assert_eq!(err.key(), Some("health.interval_seconds"));
    let text = err.to_string();
    assert!(
        text.contains("(from HEALTH_CHECK_INTERVAL_SECONDS)"),
        "{text}"
    );
    assert!(text.contains("between 10ms and 1h"), "{text}");

    let err = load("", &[("RECOVERY_MAX_RETRY_ATTEMPTS", "0")]).unwrap_err();
    assert_eq!(err.key(), Some("recovery.max_retry_attempts"));
    assert!(
        err.to_string()
            .contains("= 0 (from RECOVERY_MAX_RETRY_ATTEMPTS)"),
        "{err}"
    );

    let err = load("", &[("CHAOS_MAX_DURATION_SECONDS", "0")]).unwrap_err();
    assert_eq!(err.key(), Some("chaos.max_duration_seconds"));
    assert!(
        err.to_string().contains("CHAOS_MAX_DURATION_SECONDS"),
        "{err}"
    );
}

#[test]
fn a_bad_file_value_names_the_key_and_value() {
    let cases = [
        (
            "[health]\ninterval_seconds = 0.001\n",
            "health.interval_seconds",
            "1ms",
        ),
        (
            "[recovery]\nmultiplier = 0.5\n",
            "recovery.multiplier",
            "0.5",
        ),
        (
            "[recovery]\ninitial_delay_ms = 90000\n",
            "recovery.initial_delay_ms",
            "90s",
        ),
        (
            "[metering]\nflush_interval_ms = 0\n",
            "metering.flush_interval_ms",
            "0ns",
        ),
        (
            "[metering]\nring_capacity = 1\n",
            "metering.ring_capacity",
            "1",
        ),
        (
            // MAXLEN 0 would delete every event as it is written.
            "[metering]\nstream_max_len = 0\n",
            "metering.stream_max_len",
            "0",
        ),
        (
            "[metering]\nstream_max_len = 9999\n",
            "metering.stream_max_len",
            "9999",
        ),
        (
            "[chaos]\nmax_duration_seconds = 0\n",
            "chaos.max_duration_seconds",
            "0",
        ),
        ("namespace = \"has space\"\n", "namespace", "\"has space\""),
        (
            "[[breakers]]\nname = \"a\"\nfail_max = 0\n",
            "breakers[0].fail_max",
            "0",
        ),
        (
            "[[breakers]]\nname = \"a\"\nreset_timeout_seconds = -1.0\n",
            "breakers[0].reset_timeout_seconds",
            "-1",
        ),
        (
            "[[breakers]]\nname = \"a\"\n[[breakers]]\nname = \"a\"\n",
            "breakers[1].name",
            "\"a\"",
        ),
    ];
    for (text, key, value) in cases {
        let err = load(text, &[]).unwrap_err();
        match &err {
            ConfigLoadError::Invalid {
                key: k, value: v, ..
            } => assert_eq!((k.as_str(), v.as_str()), (key, value), "{text}"),
            other => panic!("{text}: expected an invalid value, got {other:?}"),
        }
    }
}

#[test]
fn the_ring_file_and_stream_trimming_are_configurable() {
    use resilience_control::metering::StreamTrim;
    let config = load("", &[]).unwrap();
    assert_eq!(
        config.ring_path(),
        Some(std::path::PathBuf::from("resilience-spool/meter.ring")),
        "crash-safe by default, inside the spool directory"
    );
    assert_eq!(config.stream_trim(), StreamTrim::MaxLen(1_000_000));
    let config = load(
        "[metering]\nspool_dir = \"/var/spool/x\"\nstream_trim = false\nstream_max_len = 0\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.ring_path(),
        Some(std::path::PathBuf::from("/var/spool/x/meter.ring"))
    );
    assert_eq!(
        config.stream_trim(),
        StreamTrim::None,
        "explicitly never trimmed"
    );
    let config = load("[metering]\nring_path = \"/dev/shm/r\"\n", &[]).unwrap();
    assert_eq!(
        config.ring_path(),
        Some(std::path::PathBuf::from("/dev/shm/r"))
    );
    let config = load("[metering]\ndurable_ring = false\n", &[]).unwrap();
    assert_eq!(config.ring_path(), None);
}

#[test]
fn unknown_keys_and_wrong_types_are_parse_errors_with_the_place() {
    let err = load("[health]\nintervl_seconds = 1\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigLoadError::Parse { .. }), "{err:?}");
    assert!(
        text.contains("intervl_seconds") && text.contains("line 2"),
        "{text}"
    );

    let err = load("[recovery]\nstrategy = \"sometimes\"\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sometimes") && text.contains("exponential_backoff"),
        "{text}"
    );

    let err = load("[recovery]\nmax_retry_attempts = \"five\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("max_retry_attempts"), "{err}");
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let err = ResilienceConfig::load(Some(std::path::Path::new("/nonexistent/resilience.toml")))
        .unwrap_err();
    assert!(matches!(err, ConfigLoadError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/resilience.toml"),
        "{err}"
    );
}

#[test]
fn fleet_settings_come_from_the_file_and_the_environment() {
    let none = |_: &str| None;
    let off = ResilienceConfig::from_toml_str("", &none).unwrap();
    assert!(
        off.fleet_config().unwrap().is_none(),
        "fleet mode is off by default"
    );

    let text = "redis_url = \"redis://10.0.0.5:6380\"\nnamespace = \"shop\"\n[fleet]\nenabled = true\ninstance = \"web-1\"\nquorum = 0.6\n";
    let config = ResilienceConfig::from_toml_str(text, &none).unwrap();
    let fleet = config.fleet_config().unwrap().unwrap();
    assert_eq!(fleet.instance_name(), "web-1");

    let env: HashMap<&str, &str> = [("RESILIENCE_INSTANCE", "web-2")].into();
    let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
    let config = ResilienceConfig::from_toml_str(text, &lookup).unwrap();
    assert_eq!(
        config.fleet_config().unwrap().unwrap().instance_name(),
        "web-2"
    );

    // Refused at load, naming what is wrong.
    let env: HashMap<&str, &str> = [("FLEET_ENABLED", "true")].into();
    let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
    let err = ResilienceConfig::from_toml_str("", &lookup).unwrap_err();
    assert!(err.to_string().contains("redis_url"), "{err}");

    let bad = "redis_url = \"redis://h\"\n[fleet]\nenabled = true\nquorum = 2.0\n";
    let err = ResilienceConfig::from_toml_str(bad, &none).unwrap_err();
    assert!(err.to_string().contains("fleet.quorum = 2"), "{err}");
    let bad = "redis_url = \"redis://h\"\n[fleet]\nenabled = true\npublish_seconds = 10.0\n";
    let err = ResilienceConfig::from_toml_str(bad, &none).unwrap_err();
    assert!(
        err.to_string().contains("fleet.report_ttl_seconds"),
        "{err}"
    );
}

#[test]
fn the_environment_guards_chaos_and_is_named_when_wrong() {
    use resilience_control::Environment;
    let config = load("[chaos]\nenabled = true\n", &[]).unwrap();
    assert_eq!(config.environment, Environment::Production, "the default");
    assert!(!config.chaos_config().unwrap().permits_chaos());
    let config = load("environment = \"staging\"\n[chaos]\nenabled = true\n", &[]).unwrap();
    assert!(config.chaos_config().unwrap().permits_chaos());
    let config = load("[chaos]\nenabled = true\nallow_in_production = true\n", &[]).unwrap();
    assert!(config.chaos_config().unwrap().permits_chaos());
    let config = load(
        "[chaos]\nenabled = true\n",
        &[("RESILIENCE_ENVIRONMENT", "development")],
    )
    .unwrap();
    assert!(config.chaos_config().unwrap().permits_chaos());
    let err = load("", &[("RESILIENCE_ENVIRONMENT", "moon")]).unwrap_err();
    assert_eq!(err.key(), Some("RESILIENCE_ENVIRONMENT"));
    assert!(err.to_string().contains("moon"), "{err}");
}

#[test]
fn the_admin_token_comes_from_the_file_the_environment_or_a_file_and_is_never_shown() {
    let dir = std::env::temp_dir().join(format!("token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-a-mounted-secret-0123\n").unwrap();
    let token = |config: &ResilienceConfig| {
        config
            .http_config()
            .unwrap()
            .admin_token
            .map(|t| t.expose().to_owned())
    };
    assert_eq!(token(&load("", &[]).unwrap()), None, "off by default");
    let config = load(
        &format!("[http]\nadmin_token_file = \"{}\"\n", file.display()),
        &[],
    )
    .unwrap();
    assert_eq!(
        token(&config).as_deref(),
        Some("from-a-mounted-secret-0123")
    );
    let config = load(
        "[http]\nadmin_token = \"from-the-file-0123456789\"\n",
        &[("RESILIENCE_ADMIN_TOKEN", "from-the-environment-0123")],
    )
    .unwrap();
    assert_eq!(token(&config).as_deref(), Some("from-the-environment-0123"));
    assert!(!format!("{config:?}").contains("from-the-environment"));
    let err = load("[http]\nadmin_token = \"tiny\"\n", &[]).unwrap_err();
    assert_eq!(err.key(), Some("http.admin_token"));
    assert!(!err.to_string().contains("tiny"), "{err}");
    let err = load("[http]\nadmin_token_file = \"/no/such/token\"\n", &[]).unwrap_err();
    assert_eq!(err.key(), Some("http.admin_token_file"));
    let err = load("[http]\nmax_connections = 0\n", &[]).unwrap_err();
    assert_eq!(err.key(), Some("http.max_connections"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redis_password_never_reaches_debug_output_or_errors() {
    let config = load("redis_url = \"rediss://app:Pa55word@cache:6380/0\"\n", &[]).unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("rediss://app:***@cache:6380/0"), "{shown}");
    assert!(!shown.contains("Pa55word"));
    let fleet = load(
        "redis_url = \"redis://:Pa55word@h:1\"\n[fleet]\nenabled = true\ninstance = \"a\"\n",
        &[],
    )
    .unwrap()
    .fleet_config()
    .unwrap()
    .unwrap();
    assert!(!format!("{fleet:?}").contains("Pa55word"));
    let err = load("", &[("REDIS_URL", "redis://:Pa55word@h:notaport")]).unwrap_err();
    assert!(!err.to_string().contains("Pa55word"), "{err}");
}

#[test]
fn the_example_configuration_parses_and_mentions_every_key() {
    let text = include_str!("../resilience.example.toml");
    let config = load(text, &[]).unwrap();
    assert_eq!(config.breakers.len(), 1);
    assert_eq!(
        config,
        {
            let mut expected =
                load("[[breakers]]\nname = \"payments\"\nfail_max = 5\n", &[]).unwrap();
            expected.breakers = config.breakers.clone();
            expected.bulkheads = config.bulkheads.clone();
            expected.rate_limits = config.rate_limits.clone();
            expected.retries = config.retries.clone();
            expected.retry_budgets = config.retry_budgets.clone();
            expected.time_limits = config.time_limits.clone();
            expected
        },
        "every value in the example is the default"
    );
    // Every key the configuration has appears in the example (commented or not), so it stays
    // the complete reference it claims to be.
    let mut all = ResilienceConfig::default();
    all.redis_url = Some("redis://x".into());
    all.redis_ca_file = Some("ca.pem".into());
    all.http.admin_token = Some("x".into());
    all.http.admin_token_file = Some("t".into());
    all.health.pagerduty_routing_key = Some("k".into());
    all.health.pagerduty_url = Some("u".into());
    all.metering.ring_path = Some("r".into());
    all.fleet.instance = Some("i".into());
    let serialized = toml::to_string(&all).unwrap();
    for line in serialized.lines() {
        // `breakers = []` and the like: arrays of tables, written `[[breakers]]` in the example.
        if let Some((key, _)) = line.split_once(" = ").filter(|(k, _)| {
            ![
                "breakers",
                "bulkheads",
                "rate_limits",
                "retries",
                "retry_budgets",
                "time_limits",
            ]
            .contains(k)
        }) {
            assert!(
                text.contains(&format!("{key} = ")),
                "the example lacks `{key}`"
            );
        }
    }
    for table in [
        "[[breakers]]",
        "[[bulkheads]]",
        "[[rate_limits]]",
        "[[retries]]",
        "[[retry_budgets]]",
        "[[time_limits]]",
    ] {
        assert!(text.contains(table), "the example lacks {table}");
    }
    for key in [
        "max_concurrent",
        "rate",
        "period_seconds",
        "burst",
        "max_attempts",
        "initial_backoff_seconds",
        "max_backoff_seconds",
        "multiplier",
        "budget",
        "ratio",
        "min_per_sec",
        "max_balance",
        "timeout_seconds",
    ] {
        assert!(
            text.contains(&format!("{key} = ")),
            "the example lacks `{key}`"
        );
    }
    let (bulkheads, limiters) = (config.bulkheads().unwrap(), config.rate_limiters().unwrap());
    assert_eq!((bulkheads.len(), limiters.len()), (1, 1));
    assert_eq!(bulkheads[0].limit(), 25);
    assert_eq!(limiters[0].burst(), 100);
    let retries = config.retries().unwrap();
    assert_eq!(retries[0].max_attempts(), 3);
    assert_eq!(retries[0].budget().unwrap().available(), 0);
    assert_eq!(config.time_limiters().unwrap()[0].timeout().as_secs(), 1);
    for key in [
        "failure_rate",
        "window_calls",
        "min_calls",
        "reset_timeout_seconds",
        "max_reset_timeout_seconds",
        "half_open_probes",
        "jitter",
        "fail_max",
    ] {
        assert!(
            text.contains(&format!("{key} = ")),
            "the example lacks breakers.{key}"
        );
    }
}

#[test]
fn breaker_presets_add_the_core_services_and_explicit_breakers_win() {
    let config = load(
        "breaker_presets = [\"core_services\"]\n[[breakers]]\nname = \"audit_ledger\"\nfail_max = 2\n",
        &[],
    )
    .unwrap();
    let breakers = config.breaker_configs().unwrap();
    let names: Vec<&str> = breakers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in [
        "rust_message_bus",
        "deliberation_layer",
        "constraint_generation",
        "vector_search",
        "adaptive_governance",
        "audit_ledger",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let ledger = &breakers
        .iter()
        .find(|(n, _)| n == "audit_ledger")
        .unwrap()
        .1;
    assert_eq!(ledger.fail_max(), Some(2), "the explicit entry wins");
    assert!(
        load("", &[]).unwrap().breaker_configs().unwrap().is_empty(),
        "none by default"
    );
    let err = load("breaker_presets = [\"everything\"]\n", &[]).unwrap_err();
    assert_eq!(err.key(), Some("breaker_presets[0]"));
    assert!(err.to_string().contains("core_services"), "{err}");
}

#[test]
fn limits_from_toml_are_built_and_bad_ones_name_their_key() {
    let config = load(
        "[[bulkheads]]\nname = \"db\"\nmax_concurrent = 4\n\
         [[bulkheads]]\nname = \"search\"\n\
         [[rate_limits]]\nname = \"api\"\nrate = 10\nperiod_seconds = 2.0\nburst = 3\n",
        &[],
    )
    .unwrap();
    let bulkheads = config.bulkheads().unwrap();
    assert_eq!(
        bulkheads
            .iter()
            .map(|b| (b.name(), b.limit()))
            .collect::<Vec<_>>(),
        [("db", 4), ("search", 25)]
    );
    let limiters = config.rate_limiters().unwrap();
    assert_eq!(
        limiters[0].interval(),
        std::time::Duration::from_millis(200)
    );
    let keyed = load(
        "[[rate_limits]]\nname = \"per_tenant\"\nrate = 10\nkeys = 100\n\
         [[rate_limits]]\nname = \"all\"\nrate = 5\n",
        &[],
    )
    .unwrap();
    let per_key = keyed.keyed_rate_limiters().unwrap();
    assert_eq!(
        (per_key.len(), per_key[0].name(), per_key[0].capacity()),
        (1, "per_tenant", 128)
    );
    assert_eq!(keyed.rate_limiters().unwrap()[0].name(), "all");
    assert_eq!(limiters[0].burst(), 3);
    assert_eq!(limiters[0].governance(), config.constitutional_hash);

    let cases = [
        (
            "[[bulkheads]]\nname = \"db\"\nmax_concurrent = 0\n",
            "bulkheads[0].max_concurrent",
            "0",
        ),
        (
            "[[bulkheads]]\nname = \"db\"\n[[bulkheads]]\nname = \"db\"\n",
            "bulkheads[1].name",
            "\"db\"",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 0\n",
            "rate_limits[0].rate",
            "0",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 5\nburst = 0\n",
            "rate_limits[0].burst",
            "0",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 5\nperiod_seconds = -1.0\n",
            "rate_limits[0].period_seconds",
            "-1",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 5\nperiod_seconds = 0.0\n",
            "rate_limits[0].period_seconds",
            "0ns",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 5\nkeys = 2\n",
            "rate_limits[0].keys",
            "2",
        ),
        (
            "[[rate_limits]]\nname = \"a\"\nrate = 5\n[[rate_limits]]\nname = \"a\"\nrate = 5\nkeys = 64\n",
            "rate_limits[1].name",
            "\"a\"",
        ),
    ];
    for (text, key, value) in cases {
        let err = load(text, &[])
            .and_then(|c| c.validate().map(|()| c))
            .unwrap_err();
        assert_eq!(err.key(), Some(key), "{text}: {err}");
        assert!(err.to_string().contains(value), "{text}: {err}");
    }
}

#[test]
fn retries_and_time_limits_from_toml_share_budgets_and_bad_ones_name_their_key() {
    use resilience_core::retry::Jitter;
    let config = load(
        "[[retry_budgets]]\nname = \"shared\"\nratio = 0.5\nmin_per_sec = 0\n\
         [[retries]]\nname = \"a\"\nbudget = \"shared\"\njitter = \"decorrelated\"\n\
         initial_backoff_seconds = 0.01\nmax_backoff_seconds = 0.5\nmultiplier = 3.0\n\
         [[retries]]\nname = \"b\"\nbudget = \"shared\"\nmax_attempts = 5\n\
         [[time_limits]]\nname = \"t\"\ntimeout_seconds = 0.25\n",
        &[],
    )
    .unwrap();
    let retries = config.retries().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(retries[0].budget().unwrap(), retries[1].budget().unwrap()),
        "one budget shared by both"
    );
    let backoff = retries[0].backoff();
    assert_eq!(backoff.jitter_kind(), Jitter::Decorrelated);
    assert_eq!(backoff.initial(), std::time::Duration::from_millis(10));
    assert_eq!(backoff.max(), std::time::Duration::from_millis(500));
    assert_eq!(retries[1].max_attempts(), 5);
    assert_eq!(retries[0].governance(), config.constitutional_hash);
    let limiters = config.time_limiters().unwrap();
    assert_eq!(limiters[0].timeout(), std::time::Duration::from_millis(250));

    let cases = [
        (
            "[[retries]]\nname = \"a\"\nmax_attempts = 0\n",
            "retries[0].max_attempts",
            "0",
        ),
        (
            "[[retries]]\nname = \"a\"\nbudget = \"nope\"\n",
            "retries[0].budget",
            "\"nope\"",
        ),
        (
            "[[retries]]\nname = \"a\"\nmultiplier = 0.5\n",
            "retries[0].multiplier",
            "0.5",
        ),
        (
            "[[retries]]\nname = \"a\"\ninitial_backoff_seconds = 2.0\nmax_backoff_seconds = 1.0\n",
            "retries[0].max_backoff_seconds",
            "1s",
        ),
        (
            "[[retries]]\nname = \"a\"\n[[retries]]\nname = \"a\"\n",
            "retries[1].name",
            "\"a\"",
        ),
        (
            "[[retry_budgets]]\nname = \"s\"\nratio = -1.0\n",
            "retry_budgets[0].ratio",
            "-1",
        ),
        (
            "[[retry_budgets]]\nname = \"s\"\nmax_balance = 0\n",
            "retry_budgets[0].max_balance",
            "0",
        ),
        (
            "[[time_limits]]\nname = \"t\"\ntimeout_seconds = 0.0\n",
            "time_limits[0].timeout_seconds",
            "0",
        ),
        (
            "[[time_limits]]\nname = \"t\"\ntimeout_seconds = -3.0\n",
            "time_limits[0].timeout_seconds",
            "-3",
        ),
    ];
    for (text, key, value) in cases {
        let err = load(text, &[])
            .and_then(|c| c.validate().map(|()| c))
            .unwrap_err();
        assert_eq!(err.key(), Some(key), "{text}: {err}");
        assert!(err.to_string().contains(value), "{text}: {err}");
    }
    let err = load("[[retries]]\nname = \"a\"\njitter = \"sideways\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("sideways"), "{err}");
}

//! The configuration parser (TOML text and environment variables) on arbitrary input: never a
//! panic; every failure a typed `ConfigLoadError` naming a key or variable; a password or token
//! given in the input never appears in an error or in `Debug`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resilience_control::ResilienceConfig;

/// What every secret in the input contains, so the redaction can be checked.
const MARKER: &str = "Zq9Secret";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Before the first NUL: the file; after it, `NAME=value` lines as the environment.
    let (file, env) = text.split_once('\0').unwrap_or((&text, ""));
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.replace("SECRET", MARKER))
    };
    let file = file.replace("SECRET", MARKER);
    match ResilienceConfig::from_toml_str(&file, &lookup) {
        Ok(config) => {
            let _ = config.health_config();
            let _ = config.recovery_config();
            let _ = config.metering_config();
            let _ = config.chaos_config();
            let _ = config.fleet_config();
            let _ = config.breaker_configs();
            let _ = config.redis_client();
            let _ = config.ring_path();
            let shown = format!("{config:?}");
            assert!(
                !shown.contains(&format!(":{MARKER}@")),
                "a password in Debug: {shown}"
            );
            if let Ok(http) = config.http_config() {
                assert!(!format!("{http:?}").contains(MARKER), "a token in Debug");
            }
        }
        Err(err) => {
            let shown = err.to_string();
            // A password in a URL, and any quoted token, stay hidden.
            assert!(
                !shown.contains(&format!(":{MARKER}@")),
                "a password in an error: {shown}"
            );
        }
    }
});

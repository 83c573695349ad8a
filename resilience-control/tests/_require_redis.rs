//! Whether this machine can run the Redis tests, said once and plainly: without `redis-server`
//! this fails (how to install it, and the explicit opt-out), so no Redis test can pass by
//! quietly skipping; opted out, it says SKIPPED.
#![allow(clippy::unwrap_used)]

mod support;

#[test]
fn redis_server_is_available() {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    assert_eq!(pong, "PONG");
}

/// Runs this test binary's `redis_server_is_available` with no `redis-server` on the PATH.
fn without_redis(opt_out: bool) -> (bool, String) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "redis_server_is_available", "--nocapture"])
        .env("PATH", "/nonexistent");
    if opt_out {
        command.env(support::OPT_OUT, "1");
    } else {
        command.env_remove(support::OPT_OUT);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn without_redis_server_the_outcome_is_explicit() {
    // Not opted out: a failure that says how to install Redis and how to opt out.
    let (passed, text) = without_redis(false);
    assert!(!passed, "must not pass without redis-server:\n{text}");
    assert!(
        text.contains("redis-server is not available")
            && text.contains("apt-get install redis-server")
            && text.contains("RESILIENCE_SKIP_UNAVAILABLE=1"),
        "{text}"
    );
    // Opted out: it passes, saying SKIPPED in the test's own output.
    let (passed, text) = without_redis(true);
    assert!(passed, "{text}");
    assert!(
        text.contains("SKIPPED (RESILIENCE_SKIP_UNAVAILABLE=1): redis-server"),
        "{text}"
    );
    // `0` and `false` are not opting out.
    assert!(!support::switched_on("RESILIENCE_SURELY_UNSET_VARIABLE"));
}

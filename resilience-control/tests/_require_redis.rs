//! Under `CI=true` a missing `redis-server` fails the run: the Redis tests must never pass by
//! skipping where CI is supposed to exercise them.
#![allow(clippy::unwrap_used)]

mod support;

#[test]
fn redis_server_is_available_under_ci() {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        assert!(
            support::available(),
            "CI=true but no redis-server: .ci/redis.sh installs it"
        );
        let server = support::RedisServer::start().unwrap();
        let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
        assert_eq!(pong, "PONG");
    }
}

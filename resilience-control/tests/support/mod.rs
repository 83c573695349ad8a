//! Test support: a real `redis-server` on a free port, killed when dropped. Tests only ever
//! write into servers they started (never into `REDIS_URL` or the machine's own Redis).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process this test owns.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Where a durable server keeps its append-only file.
    durable: Option<std::path::PathBuf>,
    /// More arguments (an ACL user, TLS).
    extra: Vec<String>,
    /// How clients reach it, when not plain `redis://127.0.0.1:<port>`.
    url: Option<String>,
    /// The CA a TLS server's certificate is signed by.
    ca: Option<std::path::PathBuf>,
}

/// Whether `redis-server` can be run here. A missing binary fails the tests that need it (see
/// `_require_redis.rs`) unless they are explicitly opted out, so none can pass by skipping.
pub fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Set to `1` to skip, visibly, the tests that need what this machine lacks (`redis-server`, or
/// root for a tmpfs) instead of failing them.
pub const OPT_OUT: &str = "RESILIENCE_SKIP_UNAVAILABLE";

/// Whether `variable` is set to a true value (`1`, `true`, `yes`); `0`, `false` and unset are
/// not. The one place such switches are read.
pub fn switched_on(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
}

/// What a test does when something it needs is missing: fail, saying how to get it and how to
/// opt out; or, opted out, print `SKIPPED` and return false. A skipped test must never pass
/// unnoticed: without the opt-out it fails.
pub fn unavailable(what: &str, how: &str) -> bool {
    if switched_on(OPT_OUT) {
        eprintln!("SKIPPED ({OPT_OUT}=1): {what} is not available here");
        return false;
    }
    panic!(
        "{what} is not available on this machine: {how}; or set {OPT_OUT}=1 to skip the tests \
         that need it (they then print SKIPPED)"
    );
}

/// Whether a test may start `redis-server`: yes where it is installed; where it is not, the
/// test fails with how to install it, unless opted out (then it says SKIPPED).
fn runnable() -> bool {
    available()
        || unavailable(
            "redis-server",
            "install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), \
             or run .ci/redis.sh",
        )
}

/// A port nothing listens on right now. (Binding port 0 picks one; `redis-server --port 0`
/// would instead disable TCP.)
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts a server on a free port, or returns `None` (after saying so) where there is no
    /// `redis-server` and CI is not set.
    pub fn start() -> Option<RedisServer> {
        runnable().then(|| Self::start_on(free_port()))
    }

    /// Starts a server on `port`, or returns `None` (after saying so) where there is no
    /// `redis-server` and CI is not set.
    pub fn start_on_checked(port: u16) -> Option<RedisServer> {
        runnable().then(|| Self::start_on(port))
    }

    /// Starts a server on `port` (failing as [`start`](Self::start) does where there is none).
    pub fn start_on(port: u16) -> RedisServer {
        assert!(runnable(), "skipped tests never get here");
        let mut server = RedisServer {
            child: None,
            port,
            durable: None,
            extra: Vec::new(),
            url: None,
            ca: None,
        };
        server.spawn();
        server
    }

    /// Starts a server that keeps every acknowledged write across a kill (append-only file,
    /// fsync on every write), so a test can kill and restart it and still see earlier data.
    pub fn start_durable(dir: &std::path::Path) -> Option<RedisServer> {
        if !runnable() {
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            durable: Some(dir.to_owned()),
            extra: Vec::new(),
            url: None,
            ca: None,
        };
        server.spawn();
        Some(server)
    }

    /// Starts a server whose only user is the ACL user `user` with `password` (the default
    /// user is off); its URL carries them.
    pub fn start_with_acl_user(user: &str, password: &str) -> Option<RedisServer> {
        if !runnable() {
            return None;
        }
        let port = free_port();
        let mut server = RedisServer {
            child: None,
            port,
            durable: None,
            extra: [
                "--user",
                user,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
                "--user",
                "default",
                "off",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            url: Some(format!("redis://{user}:{password}@127.0.0.1:{port}")),
            ca: None,
        };
        server.spawn();
        Some(server)
    }

    /// Starts a server that speaks only TLS, with a certificate for 127.0.0.1 signed by a CA
    /// made here with `openssl` (files in `dir`); clients need [`ca_file`](Self::ca_file).
    pub fn start_tls(dir: &std::path::Path) -> Option<RedisServer> {
        if !runnable() {
            return None;
        }
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs (CI installs it)");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=resilience test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let port = free_port();
        let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let mut server = RedisServer {
            child: None,
            port,
            durable: None,
            extra: vec![
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            url: Some(format!("rediss://127.0.0.1:{port}")),
            ca: Some(dir.join("ca.pem")),
        };
        server.spawn();
        Some(server)
    }

    /// The CA file of a TLS server.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca.as_deref()
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        // A TLS server listens only on its TLS port.
        let plain_port = if self.ca.is_some() {
            "0".to_owned()
        } else {
            self.port.to_string()
        };
        command.args(["--port", &plain_port, "--bind", "127.0.0.1", "--save", ""]);
        command.args(&self.extra);
        match &self.durable {
            Some(dir) => command.args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir.to_str().unwrap(),
            ]),
            None => command.args([
                "--appendonly",
                "no",
                "--dir",
                std::env::temp_dir().to_str().unwrap(),
            ]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Brings a killed server back on the same port (with its data, if durable).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn client(&self) -> redis::Client {
        resilience_control::redis_client(&self.url(), self.ca.as_deref()).unwrap()
    }

    fn wait_ready(&self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} never answered",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>` (with the ACL user, or `rediss://`, when started so).
    pub fn url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("redis://127.0.0.1:{}", self.port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `name` made unique to this run (tests on one server never see each other's keys).
    pub fn namespace(&self, name: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{name}-{}-{nanos}", std::process::id())
    }

    /// A synchronous connection, for checking what arrived.
    pub fn connection(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    /// Every entry of the metering stream `{ns}:meter`, oldest first, as field → value.
    #[allow(dead_code)] // not every test binary reads the stream
    pub fn meter_stream(&self, ns: &str) -> Vec<std::collections::HashMap<String, String>> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{{{ns}}}:meter"))
            .arg("-")
            .arg("+")
            .query(&mut self.connection())
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|entry| {
                entry
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                    .collect()
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "resilience-test-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

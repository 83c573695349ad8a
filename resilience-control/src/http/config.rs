//! [`HttpConfig`]: who may change state, and how much any client may take.

use std::fmt;
use std::time::Duration;

use resilience_core::ConfigError;
use subtle::ConstantTimeEq;

use crate::error::invalid;

/// The bearer token that state-changing endpoints require. Compared in constant time; never
/// printed (its `Debug` and `Display` say `***`).
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Shortest token accepted: guessing one must not be practical.
    pub const MIN_LEN: usize = 16;

    /// A token, checked for length and for characters that survive an HTTP header.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `admin_token` (without its value) when it is shorter
    /// than [`MIN_LEN`](Self::MIN_LEN) or has whitespace or control characters.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        if token.len() < Self::MIN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "admin_token",
                format_args!("({} characters, not shown)", token.len()),
                "at least 16 printable ASCII characters, no spaces",
            ));
        }
        Ok(AdminToken(token))
    }

    /// Whether `offered` is this token, in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        self.0.as_bytes().ct_eq(offered.as_bytes()).into()
    }

    /// The token itself, for a client that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the HTTP endpoints protect themselves; defaults are safe to expose to a cluster network.
///
/// * **Mutations need a token.** `POST /chaos/stop`, `POST /chaos/resume` and
///   `DELETE /chaos/{name}` require `Authorization: Bearer <admin_token>` and
///   `Content-Type: application/json` (which no HTML form can send, so a web page cannot forge
///   them). Without a token configured they are refused with 403, saying how to enable them.
///   Reads stay open.
/// * **Bounded.** A client has `header_read_timeout` to send its request head (idle
///   keep-alive connections included), a request gets `request_timeout` in all, bodies are
///   capped at `max_body_bytes`, and at most `max_connections` are open at once (more are
///   closed on accept), so idle or slow clients cannot exhaust file descriptors the rest of
///   the process needs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The token state-changing endpoints require; `None` refuses them all (default).
    pub admin_token: Option<AdminToken>,
    /// Time to send a request's head, counted from when the server is ready to read it
    /// (default 5 s).
    pub header_read_timeout: Duration,
    /// Time for a whole request (default 10 s; answered 408 past it).
    pub request_timeout: Duration,
    /// Connections open at once (default 256); more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Largest request body (default 16 KiB; answered 413 past it).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            admin_token: None,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_body_bytes: 16 << 10,
        }
    }
}

impl HttpConfig {
    /// The token mutations require.
    #[must_use]
    pub fn admin_token(mut self, token: AdminToken) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let between = |field, d: Duration, low: Duration, high: Duration, expected| {
            if d < low || d > high {
                Err(invalid(field, format_args!("{d:?}"), expected))
            } else {
                Ok(())
            }
        };
        between(
            "header_read_timeout",
            self.header_read_timeout,
            Duration::from_millis(10),
            Duration::from_secs(300),
            "between 10ms and 5m",
        )?;
        between(
            "request_timeout",
            self.request_timeout,
            Duration::from_millis(10),
            Duration::from_secs(3600),
            "between 10ms and 1h",
        )?;
        if self.max_connections == 0 || self.max_connections > 65_536 {
            return Err(invalid(
                "max_connections",
                self.max_connections,
                "1 to 65536 connections",
            ));
        }
        if self.max_body_bytes > 64 << 20 {
            return Err(invalid(
                "max_body_bytes",
                self.max_body_bytes,
                "at most 67108864 bytes",
            ));
        }
        Ok(())
    }
}

crate::setters::setters!(HttpConfig {
    /// Time to send a request's head.
    header_read_timeout: Duration;
    /// Time for a whole request.
    request_timeout: Duration;
    /// Connections open at once.
    max_connections: usize;
    /// Largest request body.
    max_body_bytes: usize;
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_never_shown_and_compares_whole() {
        let token = AdminToken::new("0123456789abcdef-secret").unwrap();
        assert_eq!(format!("{token} {token:?}"), "*** AdminToken(***)");
        assert!(token.matches("0123456789abcdef-secret"));
        assert!(!token.matches("0123456789abcdef-secreT"));
        assert!(!token.matches("0123456789abcdef"));
        let short = AdminToken::new("short").unwrap_err().to_string();
        assert!(!short.contains("short"), "the value is not shown: {short}");
        assert!(AdminToken::new("has a space in it!!").is_err());
    }
}

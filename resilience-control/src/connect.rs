//! [`redis_client`]: one way to reach Redis, plain or TLS, for metering and fleet mode alike.

use std::path::Path;

/// A client for `url`: `redis://` or, for TLS, `rediss://` (checked against the system's
/// roots, or against the CA in the PEM file `ca_file` for a private CA). An ACL user goes in
/// the URL as `user:password@`. Nothing connects until first use.
///
/// # Errors
///
/// A [`redis::RedisError`] for a URL that does not parse, or a CA file that cannot be read
/// (its message names the file, never the URL's password).
pub fn redis_client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, redis::RedisError> {
    match ca_file {
        None => redis::Client::open(url),
        Some(file) => {
            let root_cert = std::fs::read(file).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read the Redis CA file",
                    format!("{}: {e}", file.display()),
                ))
            })?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
        }
    }
}

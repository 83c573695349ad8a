//! The accept loop: HTTP/1.1 connections from hyper, each with a header-read timeout, at most
//! `max_connections` at once, and a graceful end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::config::HttpConfig;
use super::routes::router_with;
use crate::ControlPlane;

/// How long shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections refused because `max_connections` were open, process-wide (for metrics).
pub(crate) static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Serves [`router_with`] on `listener` with `config`'s bounds until `shutdown` is cancelled;
/// requests in flight then get five seconds to finish.
///
/// # Errors
///
/// [`ConfigError`](resilience_core::ConfigError) (as an `io::Error` of kind `InvalidInput`)
/// for a bad `config`. Accept errors are retried (a process out of file descriptors waits a
/// moment rather than spinning).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    control: ControlPlane,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tracing::info!(address = ?listener.local_addr().ok(), mutations = config.admin_token.is_some(), "HTTP endpoints listening");
    let app = router_with(control, &config);
    let open = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // EMFILE and the like: back off instead of spinning on the listener.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&open).try_acquire_owned() else {
            REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that leaves, misbehaves or times out just ends its connection.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown grace; leaving them");
    }
    Ok(())
}

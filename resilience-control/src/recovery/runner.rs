//! [`CheckRunner`]: where users' health checks run, so that one that blocks or panics fails
//! alone.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::orchestrator::HealthCheck;
use crate::task::{CatchUnwind, panic_message};

/// Threads of the checks' runtime: two blocked checks still leave the control plane untouched;
/// later checks then wait, time out and fail, each on its own.
const THREADS: usize = 2;

/// Where health checks run ([`RecoveryConfig::check_isolation`](super::RecoveryConfig)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckIsolation {
    /// On a small runtime of their own (two threads named `resilience-check`): a check that
    /// blocks its thread, or never yields, cannot stall the control loops, the HTTP endpoints
    /// or health sampling, and still times out on time. Checks see that runtime's clock, which
    /// is real time.
    #[default]
    Runtime,
    /// As a task on the control plane's own runtime, so checks share its clock: for tests with
    /// paused time (`#[tokio::test(start_paused = true)]`), whose clock a separate runtime
    /// would not follow. A panicking check still fails alone; a blocking one occupies a worker
    /// of that runtime.
    Inline,
}

/// Runs health checks on a small runtime of their own (threads named `resilience-check`),
/// created on first use. The timeout is awaited on the caller's runtime, so a check that
/// blocks its thread (a synchronous sleep, a blocking client) still times out on time, and the
/// control loops, the HTTP endpoints and health sampling never share a thread with it. Creating
/// the check's future and every poll of it run inside `catch_unwind`, so a check that panics
/// (even before returning its future) is a failed attempt, not a stuck one.
#[derive(Default)]
pub(crate) struct CheckRunner {
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl CheckRunner {
    fn handle(&self) -> Result<tokio::runtime::Handle, String> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(THREADS)
                    .thread_name("resilience-check")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the health-check runtime: {e}"))
            })
            .as_ref()
            .map(|runtime| runtime.handle().clone())
            .map_err(Clone::clone)
    }

    /// Runs `check` for `service`: `Ok` when it passed, else why not (its error, a panic, or
    /// the timeout).
    pub(crate) async fn run(
        &self,
        isolation: CheckIsolation,
        check: Arc<dyn HealthCheck>,
        service: String,
        timeout: Duration,
    ) -> Result<(), String> {
        let handle = match isolation {
            CheckIsolation::Runtime => self.handle()?,
            CheckIsolation::Inline => tokio::runtime::Handle::current(),
        };
        let mut task = AbortOnDrop(handle.spawn(async move {
            let future = catch_unwind(AssertUnwindSafe(|| check.check(service)))
                .map_err(|p| format!("health check panicked: {}", panic_message(&*p)))?;
            match CatchUnwind::new(future).await {
                Ok(result) => result,
                Err(p) => Err(format!("health check panicked: {}", panic_message(&*p))),
            }
        }));
        match tokio::time::timeout(timeout, &mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("health check task failed: {join}")),
            // A check blocking its thread cannot be stopped, only abandoned (the guard aborts
            // it at its next yield): it finishes, or not, on its runtime, and is not waited for.
            Err(_) => Err(format!("health check timed out after {timeout:?}")),
        }
    }
}

/// Aborts the check's task when the attempt stops waiting for it: on timeout, and when the
/// attempt is cancelled (its future dropped).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), String>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for CheckRunner {
    fn drop(&mut self) {
        if let Some(Ok(runtime)) = self.runtime.take() {
            // Never waits for a blocked check (and may be dropped inside async code).
            runtime.shutdown_background();
        }
    }
}

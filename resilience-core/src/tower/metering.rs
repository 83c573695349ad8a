//! [`MeteringLayer`]: a tower middleware that records one [`UsageEvent`] per request.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::{Clock, CoarseClock, Nanos};
use crate::meter::{InlineId, MeterRing, Operation, Tier, UsageEvent};

/// How many tokens a response accounts for: every `Fn(&Result<Response, Error>) -> u32`, or
/// [`NoTokens`] (the default).
pub trait CountTokens<T, E> {
    /// Tokens to bill for `result`.
    fn count_tokens(&self, result: &Result<T, E>) -> u32;
}

impl<T, E, F> CountTokens<T, E> for F
where
    F: Fn(&Result<T, E>) -> u32,
{
    #[inline(always)]
    fn count_tokens(&self, result: &Result<T, E>) -> u32 {
        self(result)
    }
}

/// The default [`CountTokens`]: zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoTokens;

impl<T, E> CountTokens<T, E> for NoTokens {
    #[inline(always)]
    fn count_tokens(&self, _: &Result<T, E>) -> u32 {
        0
    }
}

/// Which clock times a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatencyClock {
    /// The ring's coarse clock: one atomic load per reading, resolution of its ticker
    /// (1 ms under the control plane). The default, in keeping with the data-plane contract.
    #[default]
    Coarse,
    /// The ring clock's precise reading (TSC through quanta where available): two reads per
    /// request.
    Precise,
}

/// Wraps services in a [`MeteringService`] that records a [`UsageEvent`] per request into a
/// [`MeterRing`].
///
/// The tenant and agent ids come from the request through your functions; the operation and
/// tier are fixed per layer; tokens can be counted from the response with
/// [`tokens`](Self::tokens). A request whose tenant or agent id is missing or longer than
/// [`MAX_ID_LEN`](crate::meter::MAX_ID_LEN) bytes is not recorded but counted in
/// [`unattributed`](Self::unattributed); a full ring refuses the event and counts it in its own
/// ledger. `record` never blocks, so neither does the layer.
pub struct MeteringLayer<T, A, N = NoTokens, C: Clock = CoarseClock> {
    ring: Arc<MeterRing<C>>,
    tenant: T,
    agent: A,
    tokens: N,
    operation: Operation,
    tier: Tier,
    clock: LatencyClock,
    unattributed: Arc<AtomicU64>,
}

impl<T, A, C: Clock> MeteringLayer<T, A, NoTokens, C> {
    /// A layer recording into `ring`, with tenant and agent ids read from each request by
    /// `tenant` and `agent`. Operation [`Operation::AgentMessage`], tier [`Tier::Standard`],
    /// zero tokens, coarse latency, until set otherwise.
    pub fn new<Req>(ring: Arc<MeterRing<C>>, tenant: T, agent: A) -> Self
    where
        T: Fn(&Req) -> Option<&str>,
        A: Fn(&Req) -> Option<&str>,
    {
        MeteringLayer {
            ring,
            tenant,
            agent,
            tokens: NoTokens,
            operation: Operation::AgentMessage,
            tier: Tier::Standard,
            clock: LatencyClock::Coarse,
            unattributed: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<T, A, N, C: Clock> MeteringLayer<T, A, N, C> {
    /// Counts tokens from each result (e.g. a response header or body length).
    pub fn tokens<N2, Resp, E>(self, tokens: N2) -> MeteringLayer<T, A, N2, C>
    where
        N2: Fn(&Result<Resp, E>) -> u32,
    {
        MeteringLayer {
            ring: self.ring,
            tenant: self.tenant,
            agent: self.agent,
            tokens,
            operation: self.operation,
            tier: self.tier,
            clock: self.clock,
            unattributed: self.unattributed,
        }
    }

    /// The operation every event records.
    #[must_use]
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }

    /// The billing tier every event records.
    #[must_use]
    pub fn tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }

    /// Which clock times requests.
    #[must_use]
    pub fn latency_clock(mut self, clock: LatencyClock) -> Self {
        self.clock = clock;
        self
    }

    /// Requests not recorded because a tenant or agent id was missing or too long, across every
    /// service this layer built.
    pub fn unattributed(&self) -> u64 {
        self.unattributed.load(Ordering::Relaxed)
    }
}

impl<T: Clone, A: Clone, N: Clone, C: Clock> Clone for MeteringLayer<T, A, N, C> {
    fn clone(&self) -> Self {
        MeteringLayer {
            ring: Arc::clone(&self.ring),
            tenant: self.tenant.clone(),
            agent: self.agent.clone(),
            tokens: self.tokens.clone(),
            operation: self.operation,
            tier: self.tier,
            clock: self.clock,
            unattributed: Arc::clone(&self.unattributed),
        }
    }
}

impl<T, A, N, C: Clock> fmt::Debug for MeteringLayer<T, A, N, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringLayer")
            .field("operation", &self.operation)
            .field("tier", &self.tier)
            .field("clock", &self.clock)
            .field("unattributed", &self.unattributed())
            .finish_non_exhaustive()
    }
}

impl<S, T: Clone, A: Clone, N: Clone, C: Clock> Layer<S> for MeteringLayer<T, A, N, C> {
    type Service = MeteringService<S, T, A, N, C>;

    fn layer(&self, inner: S) -> Self::Service {
        MeteringService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A metered service; built by [`MeteringLayer`].
///
/// Every request that reaches `call` with a valid tenant and agent is recorded exactly once:
/// when its response (or error) arrives, with the latency and tokens, or, if the response future
/// is dropped first, at that moment with the latency so far and zero tokens.
pub struct MeteringService<S, T, A, N = NoTokens, C: Clock = CoarseClock> {
    inner: S,
    layer: MeteringLayer<T, A, N, C>,
}

impl<S: Clone, T: Clone, A: Clone, N: Clone, C: Clock> Clone for MeteringService<S, T, A, N, C> {
    fn clone(&self) -> Self {
        MeteringService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T, A, N, C: Clock> fmt::Debug for MeteringService<S, T, A, N, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, Req, T, A, N, C> Service<Req> for MeteringService<S, T, A, N, C>
where
    S: Service<Req>,
    T: Fn(&Req) -> Option<&str>,
    A: Fn(&Req) -> Option<&str>,
    N: CountTokens<S::Response, S::Error> + Clone,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MeteringFuture<S::Future, N, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let layer = &self.layer;
        let ids = (layer.tenant)(&request)
            .and_then(|tenant| InlineId::new(tenant).ok())
            .zip((layer.agent)(&request).and_then(|agent| InlineId::new(agent).ok()));
        let recording = match ids {
            Some((tenant, agent)) => {
                let event = UsageEvent::from_ids(tenant, agent, layer.operation, layer.tier);
                Some(Recording {
                    ring: Arc::clone(&layer.ring),
                    started: read(layer.ring.clock(), layer.clock),
                    clock: layer.clock,
                    event,
                })
            }
            None => {
                layer.unattributed.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        MeteringFuture {
            call: self.inner.call(request),
            recording,
            tokens: layer.tokens.clone(),
        }
    }
}

#[inline(always)]
fn read<C: Clock>(clock: &C, which: LatencyClock) -> Nanos {
    match which {
        LatencyClock::Coarse => clock.now(),
        LatencyClock::Precise => clock.precise_now(),
    }
}

/// One request's event, recorded exactly once: when the response arrives, or on drop if the
/// request was cancelled.
struct Recording<C: Clock> {
    ring: Arc<MeterRing<C>>,
    started: Nanos,
    clock: LatencyClock,
    event: UsageEvent,
}

impl<C: Clock> Recording<C> {
    fn record(self, tokens: u32) {
        let latency = read(self.ring.clock(), self.clock).saturating_since(self.started);
        let event = self.event.tokens(tokens).latency(latency);
        // A refusal (ring full or closed) is counted in the ring's ledger; nothing to add here.
        let _ = self.ring.record(event);
    }
}

pin_project! {
    /// The future of a [`MeteringService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct MeteringFuture<F, N, C: Clock> {
        #[pin]
        call: F,
        recording: Option<Recording<C>>,
        tokens: N,
    }

    impl<F, N, C: Clock> PinnedDrop for MeteringFuture<F, N, C> {
        fn drop(this: Pin<&mut Self>) {
            // Cancelled before the response: the request still happened.
            if let Some(recording) = this.project().recording.take() {
                recording.record(0);
            }
        }
    }
}

impl<F, N, C, T, E> Future for MeteringFuture<F, N, C>
where
    F: Future<Output = Result<T, E>>,
    N: CountTokens<T, E>,
    C: Clock,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.call.poll(cx));
        if let Some(recording) = this.recording.take() {
            recording.record(this.tokens.count_tokens(&result));
        }
        Poll::Ready(result)
    }
}

impl<F, N, C: Clock> fmt::Debug for MeteringFuture<F, N, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringFuture")
            .field("pending", &self.recording.is_some())
            .finish_non_exhaustive()
    }
}

//! The circuit breaker against a straightforward reference model.
//!
//! The model keeps its state in plain fields, its count window as a `VecDeque` and its time
//! window as a map from bucket number to counts, and never packs anything into bits. After
//! every operation the driver compares state, generation, backoff level, consecutive failures,
//! probe counts, the OPEN deadline, window counts, lifetime totals, and the transition events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::{
    BreakerConfig, CircuitBreaker, Clock, EventChannel, ManualClock, Permit, RejectReason,
    SlidingWindow, State,
};

/// What one run exercised, so callers can check a corpus is not vacuous.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Transitions seen, as `(from, to)` pairs with counts.
    pub transitions: BTreeMap<(State, State), u64>,
    /// Rejections seen, by reason.
    pub rejections: BTreeMap<&'static str, u64>,
    /// Outcomes that arrived stale.
    pub stale: u64,
    /// Trips caused by the failure rate.
    pub rate_trips: u64,
    /// Trips caused by consecutive failures.
    pub consecutive_trips: u64,
    /// HALF_OPEN restarts because probes were presumed lost.
    pub probe_timeouts: u64,
    /// Chaos forces that expired and restored the breaker on the call path.
    pub forced_expiries: u64,
    /// Operations applied.
    pub ops: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        for (k, v) in &other.transitions {
            *self.transitions.entry(*k).or_default() += v;
        }
        for (k, v) in &other.rejections {
            *self.rejections.entry(k).or_default() += v;
        }
        self.stale += other.stale;
        self.rate_trips += other.rate_trips;
        self.consecutive_trips += other.consecutive_trips;
        self.probe_timeouts += other.probe_timeouts;
        self.forced_expiries += other.forced_expiries;
        self.ops += other.ops;
    }
}

/// Decodes `data` into a configuration and a sequence of operations, runs them against the
/// real breaker and the model, and panics on the first difference.
///
/// # Panics
///
/// When the breaker and the model disagree (that is the point).
pub fn run(data: &[u8]) -> Coverage {
    let mut coverage = Coverage::default();
    let mut bytes = Bytes(data);
    let spec = Spec::decode(&mut bytes);
    let Some(config) = spec.config() else {
        return coverage;
    };
    let clock = ManualClock::new();
    // Start away from zero so millisecond rounding is exercised.
    clock.advance(Duration::from_micros(u64::from(bytes.next()) * 37));
    let events = Arc::new(EventChannel::with_capacity(4096).expect("constant capacity is valid"));
    let breaker = CircuitBreaker::builder("model")
        .config(config)
        .clock(clock.clone())
        .events(events.clone())
        .build()
        .expect("a validated config builds");
    let mut model = Model::new(spec, clock.now().as_nanos());
    let mut held: Vec<(Permit<'_, ManualClock>, Ticket)> = Vec::new();
    let mut drained = Vec::new();

    while let Some(op) = bytes.next_opt() {
        let now = clock.now().as_nanos();
        match op % 16 {
            0..=4 => {
                let real = breaker.try_acquire();
                let expected = model.acquire(now);
                match (real, expected) {
                    (Ok(permit), Ok(ticket)) => {
                        assert_eq!(permit.state(), ticket.0, "admitted in the same state");
                        if held.len() < 16 {
                            held.push((permit, ticket));
                        } else {
                            drop(permit);
                            model.release(ticket);
                        }
                    }
                    (Err(rejected), Err((reason, retry_ms))) => {
                        assert_eq!(rejected.reason(), reason);
                        *coverage.rejections.entry(reason.as_str()).or_default() += 1;
                        assert_eq!(rejected.retry_after(), retry_ms.map(Duration::from_millis));
                    }
                    (real, expected) => panic!(
                        "acquire diverged: real {:?}, model {:?}",
                        real.map(|p| p.state()),
                        expected
                    ),
                }
            }
            5..=12 if !held.is_empty() => {
                let index = usize::from(bytes.next()) % held.len();
                let (permit, ticket) = held.swap_remove(index);
                match op % 16 {
                    5..=7 => {
                        permit.success();
                        model.outcome(ticket, Some(false), now);
                    }
                    8..=10 => {
                        permit.failure();
                        model.outcome(ticket, Some(true), now);
                    }
                    11 => {
                        permit.ignore();
                        model.release(ticket);
                    }
                    _ => {
                        drop(permit);
                        model.release(ticket);
                    }
                }
            }
            13 => clock.advance(Duration::from_millis(
                u64::from(bytes.next()) * spec.step_ms,
            )),
            14 => clock.advance(Duration::from_micros(u64::from(bytes.next()) * 13)),
            15 => {
                let choice = bytes.next();
                if choice % 6 == 5 {
                    // A chaos-style timed force.
                    let ms = 5 * (1 + u64::from(bytes.next()));
                    let forced = breaker
                        .force_open_for(Duration::from_millis(ms))
                        .expect("a valid duration");
                    assert_eq!(
                        forced.previous, model.state,
                        "timed force reports the state it left"
                    );
                    model.force_for(ms, now);
                } else {
                    let to = match choice % 6 {
                        0 => State::ForcedOpen,
                        1 => State::Disabled,
                        2 => State::Closed,
                        3 => State::HalfOpen,
                        _ => State::Open,
                    };
                    let previous = match to {
                        State::ForcedOpen => breaker.force_open().previous,
                        State::Disabled => breaker.disable(),
                        State::Closed => breaker.reset(),
                        State::HalfOpen => breaker.transition_to_half_open(),
                        State::Open => breaker.trip_open(),
                    };
                    assert_eq!(
                        previous, model.state,
                        "forced move reports the state it left"
                    );
                    model.force(to, now);
                }
            }
            _ => {}
        }
        model.compare(&breaker, clock.now().as_nanos());
        events.drain_into(&mut drained, usize::MAX);
        let expected: Vec<(State, State)> = model.transitions.drain(..).collect();
        let got: Vec<(State, State)> = drained.drain(..).map(|e| (e.from, e.to)).collect();
        assert_eq!(got, expected, "transition events");
        for pair in got {
            *coverage.transitions.entry(pair).or_default() += 1;
        }
        coverage.ops += 1;
    }
    coverage.stale = model.totals[STALE];
    coverage.rate_trips = model.rate_trips;
    coverage.consecutive_trips = model.consecutive_trips;
    coverage.probe_timeouts = model.probe_timeouts;
    coverage.forced_expiries = model.forced_expiries;
    coverage
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next_opt(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn next(&mut self) -> u8 {
        self.next_opt().unwrap_or(0)
    }
}

/// The configuration, decoded from the first bytes; small numbers so interesting paths are hit.
#[derive(Clone, Copy, Debug)]
struct Spec {
    fail_max: Option<u64>,
    rate_ppm: Option<u64>,
    window: SlidingWindow,
    min_calls: u32,
    reset_ms: u64,
    max_ms: u64,
    multiplier: u64,
    probes: u64,
    successes: u64,
    probe_timeout_ms: Option<u64>,
    step_ms: u64,
}

impl Spec {
    fn decode(bytes: &mut Bytes<'_>) -> Spec {
        let (a, b, c, d, e) = (
            bytes.next(),
            bytes.next(),
            bytes.next(),
            bytes.next(),
            bytes.next(),
        );
        let fail_max = (a & 0x7 != 0).then_some(u64::from(a & 0x7));
        let rate_ppm = (a & 0x8 != 0).then_some(250_000 * u64::from(1 + ((a >> 4) & 0x3)));
        let window = if b & 1 == 0 {
            SlidingWindow::Count(u32::from(1 + ((b >> 1) & 0x7)))
        } else {
            SlidingWindow::Time {
                duration: Duration::from_millis(10 * u64::from(1 + ((b >> 1) & 0x3)) * 4),
                buckets: u32::from(1 + ((b >> 3) & 0x3)),
            }
        };
        let window_size = match window {
            SlidingWindow::Count(n) => n,
            _ => u32::MAX,
        };
        Spec {
            fail_max,
            rate_ppm,
            window,
            min_calls: u32::from(1 + (b >> 5)).min(window_size),
            reset_ms: 10 * u64::from(1 + (c & 0xf)),
            max_ms: 10 * u64::from(1 + (c & 0xf)) * u64::from(1 + (c >> 4)),
            multiplier: 1 + u64::from(d & 1),
            probes: u64::from(1 + ((d >> 1) & 0x3)),
            successes: u64::from(1 + ((d >> 3) & 0x3)),
            probe_timeout_ms: (d & 0x20 != 0).then_some(50 * u64::from(1 + (e & 0x7))),
            step_ms: u64::from(1 + (e >> 3)),
        }
    }

    fn config(&self) -> Option<BreakerConfig> {
        let mut b = BreakerConfig::builder()
            .sliding_window(self.window)
            .min_calls(self.min_calls)
            .reset_timeout(Duration::from_millis(self.reset_ms))
            .max_reset_timeout(Duration::from_millis(self.max_ms))
            .backoff_multiplier(self.multiplier as f64)
            .half_open_probes(self.probes as u32)
            .half_open_successes(self.successes as u32);
        b = match self.fail_max {
            Some(n) => b.fail_max(n as u32),
            None => b.without_fail_max(),
        };
        if let Some(ppm) = self.rate_ppm {
            b = b.failure_rate(ppm as f64 / 1_000_000.0);
        }
        b = match self.probe_timeout_ms {
            Some(ms) => b.probe_timeout(Duration::from_millis(ms)),
            None => b.without_probe_timeout(),
        };
        // Specs with no trip policy are rejected by build(); such inputs are skipped.
        b.build().ok()
    }
}

type Ticket = (State, u32);

/// The reference model: plain fields, no packing, no atomics.
struct Model {
    spec: Spec,
    state: State,
    generation: u32,
    level: u32,
    consecutive: u64,
    /// OPEN, or FORCED_OPEN by chaos: the deadline.
    deadline_ms: u64,
    /// FORCED_OPEN by chaos: where the breaker goes back at the deadline.
    forced_restore: Option<State>,
    in_flight: u64,
    probe_successes: u64,
    last_probe_ms: u64,
    /// Count window: outcomes, oldest first (`true` = failed).
    recent: VecDeque<bool>,
    /// Time window: bucket number -> (calls, failures).
    buckets: BTreeMap<u64, (u64, u64)>,
    totals: [u64; 5],
    transitions: Vec<(State, State)>,
    rate_trips: u64,
    consecutive_trips: u64,
    probe_timeouts: u64,
    forced_expiries: u64,
}

const SUCCESSES: usize = 0;
const FAILURES: usize = 1;
const IGNORED: usize = 2;
const REJECTED: usize = 3;
const STALE: usize = 4;

impl Model {
    fn new(spec: Spec, _now: u64) -> Model {
        Model {
            spec,
            state: State::Closed,
            generation: 0,
            level: 0,
            consecutive: 0,
            deadline_ms: 0,
            forced_restore: None,
            in_flight: 0,
            probe_successes: 0,
            last_probe_ms: 0,
            recent: VecDeque::new(),
            buckets: BTreeMap::new(),
            totals: [0; 5],
            transitions: Vec::new(),
            rate_trips: 0,
            consecutive_trips: 0,
            probe_timeouts: 0,
            forced_expiries: 0,
        }
    }

    fn go(&mut self, to: State, level: u32) {
        self.forced_restore = None;
        self.transitions.push((self.state, to));
        self.state = to;
        self.generation = (self.generation + 1) % (1 << 20);
        self.level = level.min(31);
        self.consecutive = 0;
        self.in_flight = 0;
        self.probe_successes = 0;
    }

    fn open(&mut self, level: u32, now: u64) {
        let base = u128::from(self.spec.reset_ms) * 1_000_000;
        let cap = u128::from(self.spec.max_ms) * 1_000_000;
        let grown = (base * u128::from(self.spec.multiplier).pow(level.min(31))).min(cap);
        let timeout = grown.max(1_000_000) as u64;
        self.go(State::Open, level);
        self.deadline_ms = (now + timeout).div_ceil(1_000_000);
    }

    fn probe(&mut self, now: u64) {
        self.in_flight += 1;
        self.last_probe_ms = now / 1_000_000;
    }

    fn acquire(&mut self, now: u64) -> Result<Ticket, (RejectReason, Option<u64>)> {
        let now_ms = now / 1_000_000;
        match self.state {
            State::Closed | State::Disabled => {}
            State::ForcedOpen => match self.forced_restore {
                Some(to) if now_ms >= self.deadline_ms => {
                    // A chaos force expires on the call path; the call then proceeds.
                    self.forced_expiries += 1;
                    self.force(to, now);
                    return self.acquire(now);
                }
                timed => {
                    self.totals[REJECTED] += 1;
                    let retry = timed.map(|_| self.deadline_ms - now_ms);
                    return Err((RejectReason::ForcedOpen, retry));
                }
            },
            State::Open if now_ms < self.deadline_ms => {
                self.totals[REJECTED] += 1;
                return Err((RejectReason::Open, Some(self.deadline_ms - now_ms)));
            }
            State::Open => {
                let level = self.level;
                self.go(State::HalfOpen, level);
                self.probe(now);
            }
            State::HalfOpen if self.in_flight < self.spec.probes => self.probe(now),
            State::HalfOpen => {
                let lost = self
                    .spec
                    .probe_timeout_ms
                    .is_some_and(|t| now_ms - self.last_probe_ms >= t);
                if !lost {
                    self.totals[REJECTED] += 1;
                    return Err((RejectReason::HalfOpenFull, None));
                }
                self.probe_timeouts += 1;
                let level = self.level;
                self.go(State::HalfOpen, level);
                self.probe(now);
            }
        }
        Ok((self.state, self.generation))
    }

    fn current(&self, ticket: Ticket) -> bool {
        ticket == (self.state, self.generation)
    }

    fn release(&mut self, ticket: Ticket) {
        if !self.current(ticket) {
            self.totals[STALE] += 1;
            return;
        }
        self.totals[IGNORED] += 1;
        if self.state == State::HalfOpen {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    fn outcome(&mut self, ticket: Ticket, failed: Option<bool>, now: u64) {
        let Some(failed) = failed else {
            return self.release(ticket);
        };
        if !self.current(ticket) {
            self.totals[STALE] += 1;
            return;
        }
        self.totals[if failed { FAILURES } else { SUCCESSES }] += 1;
        match self.state {
            State::Closed => {
                let rate_trips = self.spec.rate_ppm.is_some() && {
                    self.record(failed, now);
                    failed && self.window_trips(now)
                };
                if !failed {
                    self.consecutive = 0;
                } else if rate_trips {
                    self.rate_trips += 1;
                    self.open(0, now);
                } else if self
                    .spec
                    .fail_max
                    .is_some_and(|m| self.consecutive + 1 >= m)
                {
                    self.consecutive_trips += 1;
                    self.open(0, now);
                } else if self.spec.fail_max.is_some() {
                    self.consecutive += 1;
                }
            }
            State::HalfOpen if failed => self.open(self.level + 1, now),
            State::HalfOpen => {
                self.probe_successes += 1;
                self.in_flight = self.in_flight.saturating_sub(1);
                if self.probe_successes >= self.spec.successes {
                    self.clear_window();
                    self.go(State::Closed, 0);
                }
            }
            _ => {}
        }
    }

    fn force(&mut self, to: State, now: u64) {
        match to {
            State::Open => self.open(self.level, now),
            State::HalfOpen => {
                let level = self.level;
                self.go(State::HalfOpen, level);
                self.last_probe_ms = now / 1_000_000;
            }
            State::Closed => {
                self.clear_window();
                self.go(State::Closed, 0);
            }
            other => self.go(other, 0),
        }
    }

    fn force_for(&mut self, ms: u64, now: u64) {
        let deadline = (now + ms * 1_000_000).div_ceil(1_000_000);
        let (restore, deadline) = match (self.state, self.forced_restore) {
            // An operator's force outranks chaos.
            (State::ForcedOpen, None) => return,
            (State::ForcedOpen, Some(restore)) => (restore, deadline.max(self.deadline_ms)),
            (State::Closed, _) => (State::Closed, deadline),
            (State::Disabled, _) => (State::Disabled, deadline),
            _ => (State::HalfOpen, deadline),
        };
        self.go(State::ForcedOpen, 0);
        self.forced_restore = Some(restore);
        self.deadline_ms = deadline;
    }

    fn bucket_width(&self) -> Option<(u64, u64)> {
        match self.spec.window {
            SlidingWindow::Time { duration, buckets } => {
                Some(((duration / buckets).as_nanos() as u64, u64::from(buckets)))
            }
            _ => None,
        }
    }

    fn record(&mut self, failed: bool, now: u64) {
        match (self.spec.window, self.bucket_width()) {
            (SlidingWindow::Count(n), _) => {
                self.recent.push_back(failed);
                if self.recent.len() > n as usize {
                    self.recent.pop_front();
                }
            }
            (_, Some((width, _))) => {
                let entry = self.buckets.entry(now / width).or_default();
                entry.0 += 1;
                entry.1 += u64::from(failed);
            }
            _ => unreachable!("windows are count or time"),
        }
    }

    fn window_counts(&self, now: u64) -> (u64, u64) {
        match self.bucket_width() {
            None => (
                self.recent.len() as u64,
                self.recent.iter().filter(|f| **f).count() as u64,
            ),
            Some((width, n)) => {
                let current = now / width;
                self.buckets
                    .range(current.saturating_sub(n - 1)..=current)
                    .fold((0, 0), |acc, (_, (c, f))| (acc.0 + c, acc.1 + f))
            }
        }
    }

    fn window_trips(&self, now: u64) -> bool {
        let (calls, failures) = self.window_counts(now);
        let ppm = self.spec.rate_ppm.unwrap_or(u64::MAX);
        calls >= u64::from(self.spec.min_calls) && calls > 0 && failures * 1_000_000 >= ppm * calls
    }

    fn clear_window(&mut self) {
        self.recent.clear();
        self.buckets.clear();
    }

    fn compare(&self, breaker: &CircuitBreaker<ManualClock>, now: u64) {
        let snap = breaker.snapshot();
        let ctx = format!(
            "model {:?}/{} vs real {:?}/{}",
            self.state, self.generation, snap.state, snap.generation
        );
        assert_eq!(snap.state, self.state, "{ctx}");
        assert_eq!(snap.generation, self.generation, "{ctx}");
        assert_eq!(snap.backoff_level, self.level, "backoff level; {ctx}");
        assert_eq!(
            u64::from(snap.consecutive_failures),
            self.consecutive,
            "{ctx}"
        );
        let (in_flight, successes) = if self.state == State::HalfOpen {
            (self.in_flight, self.probe_successes)
        } else {
            (0, 0)
        };
        assert_eq!(u64::from(snap.half_open_in_flight), in_flight, "{ctx}");
        assert_eq!(u64::from(snap.half_open_successes), successes, "{ctx}");
        let timed = self.state == State::Open || self.forced_restore.is_some();
        let open_until = timed.then(|| {
            let now_ms = now / 1_000_000;
            (now_ms + self.deadline_ms.saturating_sub(now_ms)) * 1_000_000
        });
        assert_eq!(snap.open_until.map(|n| n.as_nanos()), open_until, "{ctx}");
        if self.spec.rate_ppm.is_some() {
            let (calls, failures) = self.window_counts(now);
            assert_eq!(
                (
                    u64::from(snap.window.calls),
                    u64::from(snap.window.failures)
                ),
                (calls, failures),
                "window; {ctx}"
            );
        }
        let t = snap.totals;
        assert_eq!(
            [t.successes, t.failures, t.ignored, t.rejected, t.stale],
            self.totals,
            "totals; {ctx}"
        );
    }
}

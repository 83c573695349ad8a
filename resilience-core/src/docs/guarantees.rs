//! What the data plane promises, and how each promise is checked.
//!
//! # On every call path
//!
//! `try_acquire`, the [`Permit`](crate::Permit) outcome methods, dropping a permit, and
//! [`call`](crate::CircuitBreaker::call):
//!
//! * **No heap allocation.** Checked by `tests/no_alloc.rs`, a test binary with a counting
//!   global allocator, on every path (closed success and failure, trip, open and forced-open
//!   rejection, half-open admit, release and reject, disabled), with and without sliding
//!   windows, on a second thread too. The first use of a breaker on a new thread registers a
//!   thread-exit hook for its counter stripe, which may allocate once per thread.
//! * **No lock, no syscall.** State is one `AtomicU64`; transitions are one CAS; counters are
//!   per-thread stripes; events go to a preallocated lock-free ring that never waits.
//!   `resilience-core` has no `Mutex`/`RwLock` (its `clippy.toml` forbids them).
//! * **No OS clock read.** Time is one relaxed load of the [`CoarseClock`](crate::CoarseClock)
//!   (with a ticker running; without one, a time-stamp-counter read). Only the `slow-call-timing`
//!   feature with a slow-call policy reads a precise clock per call.
//! * **Lock-free progress.** A CAS retry happens only when another thread changed the word, i.e.
//!   made progress.
//!
//! # On state
//!
//! * **Outcomes apply to the generation that admitted them.** Every transition bumps a 20-bit
//!   generation; a permit's outcome is applied only while the word still shows its state and
//!   generation, otherwise it is counted as stale. So a slow call admitted while CLOSED can
//!   never decide a later HALF_OPEN probe, and a probe presumed lost cannot reopen a breaker
//!   that already moved on.
//! * **Counts are linearizable with transitions.** An outcome counts as applied only if it took
//!   effect before any competing transition (the loom models check both sides of each race).
//! * **HALF_OPEN is bounded and never wedges.** At most `half_open_probes` permits are out at
//!   once; a dropped permit releases its slot; probes unanswered for `probe_timeout` are
//!   presumed lost and a fresh generation admits new ones.
//! * **A breaker never opens early.** OPEN deadlines are rounded up to the next millisecond.
//!
//! # Chaos
//!
//! * **Bounded by construction.** Every scenario is validated when armed: duration in
//!   (0, max] (300 s by default), latency at most 5000 ms, rate in [0, 1], timeout and resource
//!   levels in range, and a blast radius that contains the target. A scenario never touches a
//!   point outside its blast radius.
//! * **Ends on time without a control plane.** Each entry carries its expiry and `check`
//!   compares it with the clock; a breaker chaos forced open carries its own deadline and
//!   restores itself on its call path.
//! * **Emergency stop is one atomic store**; every check that starts after it injects nothing,
//!   every scenario is disarmed, every breaker chaos forced open is restored (unless an operator
//!   moved it since), and arming is refused until `resume`.
//! * **Re-using a name is a new arming** with a new id, so nothing aimed at the old one (a late
//!   timer) can end the new one.
//!
//! # Metering
//!
//! * **`record` never blocks and never allocates.** A full or closed ring hands the event back in
//!   [`Refused`](crate::meter::Refused) and counts it.
//! * **The ledger always adds up.** `offered = accepted + refused` and
//!   `accepted + recovered = drained + pending` in every snapshot, even while producers and a
//!   consumer run (checked by a test that reads the ledger concurrently).
//! * **Close is linearizable.** [`close`](crate::meter::MeterRing::close) sets a bit in the
//!   ring's tail word, the word producers claim positions with: an event is accepted before the
//!   close (and a later drain gets it) or refused, never accepted and stranded. Loom model and a
//!   stress test with producers racing the close.
//! * **A file-backed ring survives `kill -9`.** [`MeterRing::open`](crate::meter::MeterRing::open)
//!   puts the slots in a shared file mapping: an accepted event is in the page cache the moment
//!   `record` returns, whatever happens to the process next. Events taken with
//!   [`drain_held`](crate::meter::MeterRing::drain_held) keep their slots until
//!   [`release_through`](crate::meter::MeterRing::release_through), so a consumer that dies with
//!   a batch in flight loses nothing: the next `open` recovers every unreleased event, in order,
//!   with its [`EventId`](crate::meter::EventId) (epoch, sequence), which sinks use to apply each
//!   event exactly once. The record path is the in-memory ring's code on other memory (the
//!   counting-allocator test covers both).
//! * **One ring per file.** The file's lock names the holder's pid to a second opener.
//!
//! # How it is checked
//!
//! * loom models (`RUSTFLAGS="--cfg resilience_loom"`): trip racing a success, concurrent
//!   failures tripping once, half-open admitting exactly N, probe success racing probe failure,
//!   a dropped probe racing an acquire, the ring with two producers and a consumer across
//!   wrap-around, producers racing the ring's close, a held slot that a producer laps onto, and
//!   a chaos slot rewritten while a check reads it. They run on loom 0.7.3 with
//!   a DPOR fix (`vendor/README.md`): upstream loom misses races behind a thread's own load, and
//!   without the fix the ring model passed with a `Relaxed` publication. Each model asserts how
//!   many interleavings it explored.
//! * Fuzz targets (`fuzz/fuzz_targets/`: `breaker_vs_model`, `fault_table`, `meter_ring`) and
//!   proptests drive the breaker, the fault table and the meter ring (held drains and
//!   releases included) on a
//!   [`ManualClock`](crate::ManualClock) against plain reference models and compare every
//!   observable after every operation; the committed corpora are replayed by normal tests.

//! What the data plane does not do, stated plainly.
//!
//! * **Generations wrap after 2^20 transitions.** A permit outstanding across a million
//!   transitions of its breaker could be mistaken for a current one. With the minimum 1 ms
//!   OPEN time that takes over 15 minutes of continuous flapping while one call hangs.
//! * **Time resolution is the clock's tick.** OPEN deadlines are whole milliseconds, and a
//!   [`CoarseClock`](crate::CoarseClock) with a 1 ms ticker lags real time by up to 1 ms, so a
//!   breaker may stay OPEN up to ~2 ms longer than its reset timeout (never shorter).
//! * **Without a ticker, clock reads cost a TSC read** (a few ns) instead of one atomic load.
//!   Start one: `CoarseClock::global().start_ticker(Duration::from_millis(1))`, or let the
//!   control plane own it.
//! * **Rate windows cost RMWs.** The consecutive-failure policy adds nothing to a CLOSED success;
//!   a count or time window adds one or two relaxed atomic RMWs per call, shared by every
//!   thread using the breaker.
//! * **Window maintenance is approximate at the edges.** A time window halves a bucket's counts
//!   (keeping the rates) once it holds 32768 calls; a count window's u32 sequence wraps every
//!   2^32 calls, leaving a few slots one lap stale for that lap. Clearing the window on close
//!   races only with callers stalled longer than the OPEN time.
//! * **Probe-timeout timing is approximate under races.** The time of the last probe admission is
//!   stored just after the CAS that admits it; a concurrent caller may read the previous
//!   admission's time for a few nanoseconds and presume the probes lost one admission early.
//! * **Lifetime totals are exact only when callers are quiet.** Each of the first 16 threads to
//!   use any breaker gets a private counter stripe (later ones share one); a snapshot sums the
//!   stripes without stopping writers.
//! * **Rejections are counted, not sent as events.** Pushing an event per rejected call would
//!   cost more than the rejection itself; the control plane reads rejection totals instead.
//! * **No async waiting in core.** `try_acquire` never waits; waiting and retry policies belong
//!   to the caller or the control plane.
//!
//! # Chaos
//!
//! * **A point holds at most four scenarios** and a table 256 points by default
//!   ([`FaultTableBuilder::capacity`](crate::chaos::FaultTableBuilder::capacity)); arming beyond
//!   that is a typed error.
//! * **A check racing an arm or disarm** may see the state just before it. A check that meets a
//!   writer mid-update four times in a row injects nothing rather than wait.
//! * **Injection counts are for reporting.** An injection racing a disarm may be credited to a
//!   neighbouring entry of the same point.
//! * **The per-thread generator is xorshift64\***: fast and fine for rates, not cryptographic.
//!
//! # Bulkhead and rate limiter
//!
//! * **Waiting for a bulkhead slot is not in order.** `acquire_within` callers (at most 64 per
//!   bulkhead) are all woken by each release and race for the slot, so one may wait longer than
//!   a later one (each still ends by its own deadline). Waiting needs a timer from the caller's
//!   runtime; the data plane has none.
//! * **`BulkheadFull` and `RateLimited` do not name their policy** (they are `Copy` and carry
//!   no string); the caller knows which one it asked.
//! * **A rate limiter sees time in the coarse clock's ticks** (1 ms under the control plane's
//!   ticker): within one tick it admits what the burst and earlier ticks' credit allow, so a
//!   rate above one permit per tick comes in per-tick bunches. Over longer spans it is exact.
//! * **At most one permit per nanosecond**, and a burst of at most `u32::MAX`.
//! * **A keyed rate limiter is a bounded table.** At most one permit per microsecond per key;
//!   a new key whose probe window (8 slots) holds only keys in debt is refused as "table full"
//!   until one pays off, so size it for the keys active within one burst window. Two keys
//!   sharing a window and a 16-bit tag share a limit (stricter, never looser); two first calls
//!   of a new key racing while a slot of its window frees may place it twice, once.
//! * **An exact shared limit costs atomic read-modify-writes**: a bulkhead admission and release
//!   are two on one line, a rate-limiter admission one compare-and-swap, as in the peers that
//!   do the same (tokio's semaphore, governor), so on one thread they are 1.5–2.3× cheaper than
//!   those peers, not more; with two threads the line's contention dominates.
//!
//! # Retry, time limit, pipeline
//!
//! * **A sync call cannot be preempted**: `Pipeline::call` has no time limit, and its backoffs
//!   and injected latency sleep the thread (the only place the data plane blocks, on a path the
//!   caller chose).
//! * **Retries return the last error**; why a call gave up (attempts, budget, deadline) is
//!   counted in the policy's snapshot, not carried by the error.
//! * **The retry budget caps deposits instead of expiring them** (Finagle and tower keep a time
//!   window): after a long healthy spell an outage may start with up to `max_balance` retries.
//! * **A time limit's deadline is on the coarse clock** (1 ms ticks under the control plane), so
//!   a limit is kept to within a tick plus the caller's timer's own resolution.
//! * **An async pipeline call is one future holding a timer slot** (its size grows with the
//!   caller's timer type, e.g. tokio's `Sleep`), moved once when it is awaited.
//!
//! # Metering
//!
//! * **Ids are inline, at most 43 bytes** (a UUID in text is 36), labels at most 15, so an
//!   event is 192 bytes (three cache lines) and never touches the heap.
//! * **`accepted` counts claimed ring positions**, so an event a producer is still copying in
//!   already counts as accepted and pending.
//! * **A refused event comes back as offered**, without the time and governance stamps.
//! * **A file-backed ring survives the process, not the host.** Pages reach the disk on the
//!   kernel's writeback (seconds); a power cut can lose what was not yet written back. The first
//!   store to a page after writeback takes a minor page fault (about a microsecond, once per page
//!   per writeback cycle), visible in p99.9, not in the median.
//! * **Held slots count against the capacity.** A consumer that holds events (in flight to a
//!   sink, or because the spool is full) makes the ring refuse sooner; and the ring is
//!   positional, so one held slot blocks producers once they lap onto it even if later slots
//!   were freed (the flusher releases in order, so it never leaves such a gap).
//! * **A ring file is tied to its build's event layout** (a fingerprint in the header); a build
//!   with another layout refuses the file rather than misread it.

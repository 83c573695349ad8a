//! Measured cost of each path on the project's 2-core CI machine (AMD EPYC VM).
//!
//! Criterion, ours beside failsafe 1.3 and recloser 1.4 in the same groups and run
//! (`cargo bench -p resilience-benches --bench peers`); medians in ns per call, each routine
//! reducing its result to a `bool`. The harness alone costs about 0.6 ns per iteration. The
//! machine is a noisy VM: repeated runs move single figures by up to ±20%, ratios much less.
//!
//! | path                                   | resilience | failsafe | recloser |
//! |----------------------------------------|-----------:|---------:|---------:|
//! | CLOSED acquire + success               |   2.0–2.8  |   11.3   |  8.1–12.9|
//! | same, `call_totals(false)`             |   1.5–1.9  |          |          |
//! | OPEN rejection                         |   2.0–2.7  |   29–30  |  30–33   |
//! | two threads, one breaker (wall / call) |   4.9–5.4  |   37–48  | 113–142  |
//!
//! Tail latency (`cargo run --release -p resilience-benches --bin tail`, hdrhistogram,
//! per-call time over batches of 64 calls):
//!
//! | case                     | p50 | p99 | p99.9 |
//! |--------------------------|----:|----:|------:|
//! | CLOSED, resilience       | 3.0 | 6.1 |   8.0 |
//! | CLOSED, recloser         | 9.9 | 19  |    45 |
//! | CLOSED 2 threads, ours   | 2.8 | 5.6 |   8.1 |
//! | CLOSED 2 threads, failsafe | 50 | 115 | 1082 |
//! | CLOSED 2 threads, recloser | 191 | 390 | 1358 |
//!
//! Chaos check and metering (`cargo bench -p resilience-benches --bench chaos --bench meter`),
//! harness floor 0.58 ns:
//!
//! | path                                        | ns          | baseline                    |
//! |---------------------------------------------|------------:|----------------------------:|
//! | chaos check, nothing armed                  | 1.06        |                             |
//! | chaos check, armed at another point         | 5.6–5.7     |                             |
//! | chaos check, armed here (injects)           | 8.7         |                             |
//! | chaos check, armed here (10% random draw)   | 9.3–9.7     |                             |
//! | meter record, one producer                  | 9.3–10.4    | `ArrayQueue::push` 7.5–8.2  |
//!
//! A chaos check with nothing armed (or an emergency stop in force) is one relaxed load of the
//! armed word. With something armed it reads the point's slot under a seqlock, the clock, and a
//! per-thread xorshift for partial rates; an injection adds one relaxed RMW (the entry's hit
//! count). A meter record is the Vyukov push (one CAS) plus the closed flag and the time and
//! governance stamps, written into the slot in place.
//!
//! Where the nanoseconds go on the CLOSED path: one relaxed load of the state word to admit; one
//! acquire load and a compare to report; one load and store on the caller's private counter
//! stripe (about 0.7 ns back to back, as each increment waits for the previous store; turn it
//! off with [`call_totals(false)`](crate::BreakerConfigBuilder::call_totals)). Nothing is
//! written to shared memory, which is why two threads scale where the peers serialise on a
//! lock or a shared RMW. Rate windows add one or two shared RMWs per call.
//!
//! Tower middleware (feature `tower`; `cargo bench -p resilience-benches --bench tower`), one
//! request = `poll_ready` + `call` + polling the response, inner service ready at once (1.2–1.7
//! ns), tower-resilience-circuitbreaker 0.14 in the same groups:
//!
//! | path                                   | `&'static` breaker | `Arc` breaker | tower-resilience |
//! |----------------------------------------|-------------------:|--------------:|-----------------:|
//! | `CircuitBreakerLayer`, CLOSED          | 4.55–4.62          | 22.3–22.7     | 208–210          |
//! | `CircuitBreakerLayer`, OPEN            | 9.85–9.88          | 5.79–5.83     | 151–155          |
//! | two threads, one breaker (wall)        | 7.1–7.4            | 44–121        | 970–5 300        |
//!
//! The response future must be `'static`. Behind an `Arc` it holds an
//! [`OwnedPermit`](crate::OwnedPermit), whose clone and drop are two locked RMWs on the `Arc`'s
//! count, a line every thread shares; behind a `&'static` it holds a plain
//! [`Permit`](crate::Permit) and costs what the breaker does plus the tower plumbing.

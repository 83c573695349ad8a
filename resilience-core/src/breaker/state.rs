//! The breaker's whole state in one `u64`, so every transition is a single CAS.
//!
//! ```text
//!  63                         28 27                8 7       3 2     0
//! +-----------------------------+-------------------+---------+-------+
//! |        payload (36)         |  generation (20)  | level(5)| state |
//! +-----------------------------+-------------------+---------+-------+
//! ```
//!
//! * `state`: [`State`] as 0..=4.
//! * `level`: how many times in a row the breaker re-opened from HALF_OPEN; sets the backoff.
//! * `generation`: bumped by every transition. A permit remembers `state | generation` (its
//!   ticket) and its outcome applies only while the word still shows the same ticket, so a late
//!   result from an earlier state can never move a newer one. It wraps after 2^20 transitions;
//!   a permit would have to stay outstanding across a million transitions to be confused.
//! * `payload`, by state: CLOSED: consecutive failures. OPEN: the deadline in milliseconds,
//!   modulo 2^36 (compared with wrapping arithmetic, so uptime is unbounded). HALF_OPEN: probes in
//!   flight (low 18 bits) and probe successes (high 18 bits). Otherwise zero.

use core::fmt;

use crate::clock::Nanos;

/// The state of a [`CircuitBreaker`](crate::CircuitBreaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Calls flow; outcomes are counted toward the trip policies.
    Closed = 0,
    /// Calls are rejected until the reset timeout passes.
    Open = 1,
    /// A bounded number of probe calls decide between CLOSED and OPEN.
    HalfOpen = 2,
    /// Rejects every call until [`reset`](crate::CircuitBreaker::reset) (operator or chaos).
    ForcedOpen = 3,
    /// Admits every call and records nothing.
    Disabled = 4,
}

impl State {
    /// Every state, in declaration order.
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// The upper-case name used in reports and metrics, e.g. `HALF_OPEN`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
            State::ForcedOpen => "FORCED_OPEN",
            State::Disabled => "DISABLED",
        }
    }

    /// Whether calls are admitted (possibly as bounded probes) in this state.
    pub const fn admits_calls(self) -> bool {
        matches!(self, State::Closed | State::HalfOpen | State::Disabled)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const STATE_MASK: u64 = 0b111;
const LEVEL_SHIFT: u32 = 3;
const LEVEL_MASK: u64 = 0x1f;
/// Highest backoff level; the multiplier raised to it already exceeds any cap.
pub(crate) const MAX_LEVEL: u32 = 31;
const GEN_SHIFT: u32 = 8;
const GEN_MASK: u64 = (1 << 20) - 1;
const PAYLOAD_SHIFT: u32 = 28;
pub(crate) const PAYLOAD_MASK: u64 = (1 << 36) - 1;
const TICKET_MASK: u64 = STATE_MASK | (GEN_MASK << GEN_SHIFT);
const HALF_OPEN_FIELD_BITS: u32 = 18;
/// Largest probe count and probe-success count HALF_OPEN can hold.
pub(crate) const HALF_OPEN_FIELD_MAX: u64 = (1 << HALF_OPEN_FIELD_BITS) - 1;

pub(crate) const CLOSED: u64 = State::Closed as u64;
pub(crate) const OPEN: u64 = State::Open as u64;
pub(crate) const HALF_OPEN: u64 = State::HalfOpen as u64;
pub(crate) const FORCED_OPEN: u64 = State::ForcedOpen as u64;
pub(crate) const DISABLED: u64 = State::Disabled as u64;

/// `state | generation` of the word a permit was issued under.
pub(crate) type Ticket = u32;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    pub(crate) const INITIAL: Word = Word(CLOSED);

    #[inline(always)]
    pub(crate) const fn state_bits(self) -> u64 {
        self.0 & STATE_MASK
    }

    pub(crate) const fn state(self) -> State {
        match self.state_bits() {
            CLOSED => State::Closed,
            OPEN => State::Open,
            HALF_OPEN => State::HalfOpen,
            FORCED_OPEN => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    pub(crate) const fn level(self) -> u32 {
        ((self.0 >> LEVEL_SHIFT) & LEVEL_MASK) as u32
    }

    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> GEN_SHIFT) & GEN_MASK) as u32
    }

    #[inline(always)]
    pub(crate) const fn payload(self) -> u64 {
        self.0 >> PAYLOAD_SHIFT
    }

    #[inline(always)]
    pub(crate) const fn ticket(self) -> Ticket {
        (self.0 & TICKET_MASK) as Ticket
    }

    /// The same state and generation with a new payload (truncated to 36 bits).
    #[inline]
    pub(crate) const fn with_payload(self, payload: u64) -> Word {
        Word(
            (self.0 & !(PAYLOAD_MASK << PAYLOAD_SHIFT))
                | ((payload & PAYLOAD_MASK) << PAYLOAD_SHIFT),
        )
    }

    /// The word after a transition: new state, level and payload, next generation.
    pub(crate) const fn transition(self, state: State, level: u32, payload: u64) -> Word {
        let generation = (self.generation() as u64 + 1) & GEN_MASK;
        let level = if level > MAX_LEVEL { MAX_LEVEL } else { level } as u64;
        Word(
            state as u64
                | (level << LEVEL_SHIFT)
                | (generation << GEN_SHIFT)
                | ((payload & PAYLOAD_MASK) << PAYLOAD_SHIFT),
        )
    }

    pub(crate) const fn half_open_in_flight(self) -> u64 {
        self.payload() & HALF_OPEN_FIELD_MAX
    }

    pub(crate) const fn half_open_successes(self) -> u64 {
        self.payload() >> HALF_OPEN_FIELD_BITS
    }

    pub(crate) const fn half_open_payload(in_flight: u64, successes: u64) -> u64 {
        (in_flight & HALF_OPEN_FIELD_MAX)
            | ((successes & HALF_OPEN_FIELD_MAX) << HALF_OPEN_FIELD_BITS)
    }

    /// OPEN only: milliseconds until the deadline, or 0 once it has passed.
    #[inline(always)]
    pub(crate) const fn open_remaining_ms(self, now: Nanos) -> u64 {
        let diff = self.payload().wrapping_sub(now.as_millis()) & PAYLOAD_MASK;
        // A "remaining" in the upper half of the 36-bit space means the deadline is behind us.
        if diff >= 1 << 35 { 0 } else { diff }
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("state", &self.state())
            .field("level", &self.level())
            .field("generation", &self.generation())
            .field("payload", &self.payload())
            .finish()
    }
}

/// The later of two deadline payloads, comparing modulo 2^36 as `open_remaining_ms` does.
pub(crate) const fn later_deadline(a: u64, b: u64) -> u64 {
    let a_after_b = a.wrapping_sub(b) & PAYLOAD_MASK;
    if a_after_b != 0 && a_after_b < 1 << 35 {
        a
    } else {
        b
    }
}

/// OPEN payload for a deadline `timeout` after `now`, rounded up to the next millisecond so a
/// breaker never reopens early.
pub(crate) const fn deadline_payload(now: Nanos, timeout_nanos: u64) -> u64 {
    now.as_nanos()
        .saturating_add(timeout_nanos)
        .div_ceil(1_000_000)
        & PAYLOAD_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_do_not_overlap() {
        let w = Word::INITIAL.transition(State::HalfOpen, 7, Word::half_open_payload(3, 9));
        assert_eq!(w.state(), State::HalfOpen);
        assert_eq!(w.level(), 7);
        assert_eq!(w.generation(), 1);
        assert_eq!((w.half_open_in_flight(), w.half_open_successes()), (3, 9));
        let w2 = w.with_payload(PAYLOAD_MASK);
        assert_eq!(
            (w2.state(), w2.level(), w2.generation()),
            (State::HalfOpen, 7, 1)
        );
        assert_eq!(w2.ticket(), w.ticket(), "payload changes keep the ticket");
        assert_ne!(w.transition(State::HalfOpen, 7, 0).ticket(), w.ticket());
    }

    #[test]
    fn generation_wraps_and_level_saturates() {
        let mut w = Word::INITIAL;
        for _ in 0..(1 << 20) {
            w = w.transition(State::Closed, 99, 0);
        }
        assert_eq!(w.generation(), 0);
        assert_eq!(w.level(), MAX_LEVEL);
    }

    #[test]
    fn deadlines_compare_across_the_36_bit_wrap() {
        // A deadline just past the 36-bit wrap, seen from just before it.
        let wrap_ms = 1u64 << 36;
        let now = Nanos::from_nanos((wrap_ms - 5) * 1_000_000);
        let w = Word::INITIAL.transition(State::Open, 0, deadline_payload(now, 10_000_000));
        assert_eq!(w.open_remaining_ms(now), 10);
        assert_eq!(
            w.open_remaining_ms(Nanos::from_nanos((wrap_ms + 4) * 1_000_000)),
            1
        );
        assert_eq!(
            w.open_remaining_ms(Nanos::from_nanos((wrap_ms + 5) * 1_000_000)),
            0
        );
        assert_eq!(
            w.open_remaining_ms(Nanos::from_nanos((wrap_ms + 999) * 1_000_000)),
            0
        );
    }

    #[test]
    fn deadline_rounds_up_never_early() {
        let now = Nanos::from_nanos(500_000);
        let w = Word::INITIAL.transition(State::Open, 0, deadline_payload(now, 1_000_000_000));
        // 1.0005 s rounds up to 1001 ms.
        assert_eq!(w.payload(), 1001);
        assert_eq!(w.open_remaining_ms(Nanos::from_nanos(1_000_500_000)), 1);
        assert_eq!(w.open_remaining_ms(Nanos::from_nanos(1_001_000_000)), 0);
    }
}

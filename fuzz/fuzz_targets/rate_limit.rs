//! The GCRA rate limiter against a leaky-bucket model (`resilience_core::testing::rate_limit_model`):
//! admission, exact retry times, weighted calls, bursts after quiet spells.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::rate_limit_model::run(data);
});

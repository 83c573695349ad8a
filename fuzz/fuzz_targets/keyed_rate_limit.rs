//! The keyed rate limiter against a table-of-leaky-buckets model
//! (`resilience_core::testing::keyed_rate_limit_model`): per-key admission and retry times,
//! placement in the probe window, idle slots reused, full windows refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::keyed_rate_limit_model::run(data);
});

//! The circuit breaker against its reference model (`resilience_core::testing::breaker_model`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::breaker_model::run(data);
});

//! The metering ring against a `VecDeque` model (`resilience_core::testing::meter_model`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::meter_model::run(data);
});

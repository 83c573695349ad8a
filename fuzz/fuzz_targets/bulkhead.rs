//! The bulkhead against its reference model (`resilience_core::testing::bulkhead_model`):
//! admission at the limit, permits dropped in any order, limits changed under load.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::bulkhead_model::run(data);
});

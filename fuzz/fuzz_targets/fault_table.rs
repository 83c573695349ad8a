//! The chaos fault table against its reference model (`resilience_core::testing::fault_table_model`):
//! validation, priorities, rates, expiry, stops and sweeps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resilience_core::testing::fault_table_model::run(data);
});

//! cargo-fuzz target: see `casarray_fuzz::checks::shields_normalize`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| casarray_fuzz::checks::shields_normalize(data));

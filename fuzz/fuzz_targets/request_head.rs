//! cargo-fuzz target: see `casarray_fuzz::checks::request_head`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| casarray_fuzz::checks::request_head(data));

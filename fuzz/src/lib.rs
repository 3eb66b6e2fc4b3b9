//! The properties the fuzz targets check, as plain functions: each target
//! is one line calling one of them, and the main crate's tests
//! (tests/abuse.rs) run every kept input of `regressions/` and `seeds/`
//! through the same functions on stable Rust.

pub mod checks;

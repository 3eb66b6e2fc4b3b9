//! mock (being built).

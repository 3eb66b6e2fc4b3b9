//! upstream (being built).

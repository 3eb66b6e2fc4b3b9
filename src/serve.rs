//! serve (being built).

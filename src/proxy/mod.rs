//! proxy (being built).

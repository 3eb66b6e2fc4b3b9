//! directory (being built).

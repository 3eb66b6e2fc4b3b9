//! lab (being built).

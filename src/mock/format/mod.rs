//! Text formats the endpoints read and write: a small XML parser and
//! writer, and dates as the protocols spell them.

pub mod clock;
pub mod xml;

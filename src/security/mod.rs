//! Security in front of the members: the Exchange shields (rules that
//! refuse the request shapes of the known front-end exploit chains),
//! `[[service]] allow_from`, failed-logon lockout and response hardening.

pub mod cidr;
pub mod credentials;
pub mod lockout;
pub mod normalize;
pub mod rules;

pub use cidr::Cidr;

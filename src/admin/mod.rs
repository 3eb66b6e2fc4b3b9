//! The admin side: Prometheus metrics and the admin API.
pub mod metrics;
pub mod server;

pub use metrics::Metrics;
pub use server::serve;

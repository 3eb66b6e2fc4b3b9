//! One config compiled for serving: everything the listeners read, built
//! from one config and swapped whole on reload (arc-swap). A request or a
//! connection sees one consistent config from start to end, and never takes
//! a lock to read it.
//!
//! It has a protocol-neutral part (the config and the [`Upstreams`]: the
//! members, their selection, health and connections) and one part per
//! protocol the array speaks ([`http::Frontend`]: the router, the services'
//! runtime settings, the rewrite plan, hyper's settings).

pub mod http;
pub mod router;

use http::Frontend;

use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::upstream::state::Registry;
use crate::upstream::{UpstreamError, Upstreams};

/// One config, ready to serve.
pub struct Snapshot {
    pub cfg: Arc<Config>,
    pub upstreams: Arc<Upstreams>,
    /// The HTTP side: router, services, rewrite plan, names, hyper settings.
    pub http: Frontend,
}

impl Snapshot {
    /// Builds the snapshot of `cfg`; member state comes from `registry`,
    /// and idle member connections from `previous` (the one it replaces).
    /// Every series whose labels `cfg` determines exists in `metrics` from
    /// here on.
    pub fn build(
        cfg: Arc<Config>,
        registry: &Registry,
        metrics: &Metrics,
        previous: Option<&Snapshot>,
    ) -> Result<Self, UpstreamError> {
        let upstreams = Arc::new(Upstreams::build(
            &cfg,
            registry,
            metrics,
            previous.map(|p| (&*p.upstreams, &*p.cfg)),
        )?);
        Ok(Snapshot {
            http: Frontend::build(&cfg, metrics, previous.map(|p| &p.http)),
            upstreams,
            cfg,
        })
    }
}

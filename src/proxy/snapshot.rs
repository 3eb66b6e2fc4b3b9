//! Everything the forwarding path reads, built from one config and swapped
//! whole on reload (arc-swap): a request sees one consistent config from
//! start to end, and never takes a lock to read it.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus::{Histogram, IntCounter};
use rustls_pki_types::ServerName;

use super::counters::RequestCounters;
use super::replay::ReplayBody;
use super::router::Router;
use crate::admin::Metrics;
use crate::config::{Affinity, Config};
use crate::rewrite::{MemberIdentity, RewritePlan};
use crate::security::Shields;
use crate::upstream::connect::Connector;
use crate::upstream::member::Registry;
use crate::upstream::pool::Pool;
use crate::upstream::{UpstreamError, Upstreams};

/// A service with its metric handles resolved once.
#[derive(Debug)]
pub struct ServiceRt {
    pub name: String,
    pub idle_timeout: Duration,
    pub response_timeout: Duration,
    pub rewrite: bool,
    /// Autodiscover answers get the EXCH-aware rewriter.
    pub autodiscover: bool,
    pub affinity: Affinity,
    /// `casarray_<service>`: the name of the array's affinity cookie.
    pub cookie_name: String,
    pub duration: Histogram,
    pub retries: IntCounter,
    pub rewrites: IntCounter,
    pub affinity_moves: IntCounter,
    /// `casarray_requests_total` per member, indexed like the backends.
    pub requests: Box<[RequestCounters]>,
}

/// One config, ready to serve.
pub struct Snapshot {
    pub cfg: Arc<Config>,
    pub upstreams: Arc<Upstreams>,
    pub router: Router,
    pub services: Box<[ServiceRt]>,
    pub plan: Arc<RewritePlan>,
    /// Makes new member connections (and health probes' connections): one
    /// TLS client configuration per snapshot, so sessions resume.
    pub connector: Connector,
    /// Idle connections per member, indexed like `upstreams.backends()`;
    /// carried over a reload for members whose name, address and TLS
    /// target stay (for TLS members, `[member_tls]` too: a connection
    /// verified against an old CA is not kept).
    pub pools: Box<[Arc<Pool<ReplayBody>>]>,
    /// Host names clients may use (lowercase, no port).
    pub hosts: Box<[String]>,
    /// HTTP/1.1 settings for client connections (timeouts, limits).
    pub http1: http1::Builder,
    /// HTTP/2 settings for client connections.
    pub http2: http2::Builder<TokioExecutor>,
    /// `https://<public name>` prefix (with `:<public_port>` when not 443),
    /// for redirects.
    pub public_origin: HeaderValue,
    /// The array's first public name (what redirects name by default).
    pub public_name: String,
    /// The Exchange shields, allow_from and lockout of this config; the
    /// lockout tables are handed on from the snapshot this one replaces.
    pub shields: Arc<Shields>,
}

impl Snapshot {
    /// Builds the snapshot of `cfg`; member state comes from `registry`,
    /// and idle member connections from `previous` (the one it replaces).
    pub fn build(
        cfg: Arc<Config>,
        registry: &Registry,
        metrics: &Metrics,
        previous: Option<&Snapshot>,
    ) -> Result<Self, UpstreamError> {
        let upstreams = Arc::new(Upstreams::build(&cfg, registry)?.with_metrics(metrics));
        let pools = upstreams
            .backends()
            .iter()
            .map(|b| {
                previous
                    .filter(|p| b.tls.is_none() || p.cfg.member_tls == cfg.member_tls)
                    .and_then(|p| p.pool_of(&b.name, b.address, b.tls.as_ref()))
                    .unwrap_or_default()
            })
            .collect();
        let router = Router::new(&cfg.services);
        let services = cfg
            .services
            .iter()
            .map(|s| ServiceRt {
                name: s.name.clone(),
                idle_timeout: s.idle_timeout,
                response_timeout: s.response_timeout,
                rewrite: s.rewrite,
                autodiscover: s.name.eq_ignore_ascii_case("autodiscover"),
                affinity: s.affinity.clone(),
                cookie_name: format!("casarray_{}", s.name),
                affinity_moves: metrics.affinity_moves.with_label_values(&[&s.name]),
                duration: metrics.request_duration.with_label_values(&[&s.name]),
                retries: metrics.upstream_retries.with_label_values(&[&s.name]),
                rewrites: metrics.rewrites.with_label_values(&[&s.name]),
                requests: upstreams
                    .backends()
                    .iter()
                    .map(|b| RequestCounters::new(&metrics.requests, &s.name, &b.name))
                    .collect(),
            })
            .collect();
        let identities: Vec<MemberIdentity> = cfg
            .members
            .iter()
            .map(|m| MemberIdentity {
                name: m.name.clone(),
                fqdn: m.fqdn.clone(),
                address: m.address,
            })
            .collect();
        let databases: Vec<(String, Option<String>)> = cfg
            .databases
            .iter()
            .map(|d| (d.name.clone(), d.rpc_client_access_server.clone()))
            .collect();
        let public = cfg
            .array
            .public_names
            .first()
            .cloned()
            .unwrap_or_else(|| cfg.array.fqdn.clone());
        let plan = Arc::new(RewritePlan::with_public_port(
            &identities,
            &public,
            cfg.array.public_port,
            &cfg.array.name,
            &databases,
        ));
        let mut hosts: Vec<String> = cfg
            .array
            .public_names
            .iter()
            .chain(std::iter::once(&cfg.array.fqdn))
            .map(|h| h.to_ascii_lowercase())
            .collect();
        hosts.sort();
        hosts.dedup();
        let origin = match cfg.array.public_port {
            443 => format!("https://{public}"),
            port => format!("https://{public}:{port}"),
        };
        let public_origin = HeaderValue::from_str(&origin)
            .unwrap_or_else(|_| HeaderValue::from_static("https://localhost"));
        let shields = Arc::new(Shields::build(&cfg, metrics, previous.map(|p| &*p.shields)));
        Ok(Snapshot {
            connector: Connector::new(&cfg)?,
            pools,
            http1: http1_builder(&cfg),
            http2: http2_builder(&cfg),
            cfg,
            upstreams,
            router,
            services,
            plan,
            hosts: hosts.into_boxed_slice(),
            public_origin,
            public_name: public.clone(),
            shields,
        })
    }

    /// The pool of the member named `name` at `address`, reached the same
    /// way (`tls`: plain, or TLS to the same server name), if it has one.
    fn pool_of(
        &self,
        name: &str,
        address: std::net::SocketAddr,
        tls: Option<&ServerName<'static>>,
    ) -> Option<Arc<Pool<ReplayBody>>> {
        let m = self.upstreams.find(name)?;
        let b = &self.upstreams.backends()[m];
        (b.address == address && b.tls.as_ref() == tls).then(|| Arc::clone(&self.pools[m]))
    }

    /// Drops idle member connections past `proxy.pool_idle_timeout`.
    pub fn sweep_pools(&self) {
        for pool in &*self.pools {
            pool.sweep(self.cfg.proxy.pool_idle_timeout);
        }
    }

    /// Whether `host` (a Host header or :authority, port allowed) names the
    /// array: one of its names, or the very address the client connected
    /// to (`local`), as clients that connect by IP write it.
    pub fn accepts_host(&self, host: &str, local: std::net::SocketAddr) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            return ip == local.ip() && port.is_none_or(|p| p == local.port());
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// `host` as name and port; `None` when what follows the name is not `:`
/// and a port number.
pub(crate) fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if host.starts_with('[') {
        let end = host.find(']')?;
        (&host[..=end], &host[end + 1..])
    } else {
        match host.rsplit_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        }
    };
    if rest.is_empty() {
        return Some((name, None));
    }
    let port = rest.strip_prefix(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().map(|p| (name, Some(p)))
}

/// HTTP/1.1 settings for client connections.
fn http1_builder(cfg: &Config) -> http1::Builder {
    let p = &cfg.proxy;
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(p.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(p.max_header_bytes.max(8192))
        .max_headers(100);
    b
}

/// HTTP/2 settings for client connections.
fn http2_builder(cfg: &Config) -> http2::Builder<TokioExecutor> {
    let p = &cfg.proxy;
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(p.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(p.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(
            split_host("mail.lab.com:8443"),
            Some(("mail.lab.com", Some(8443)))
        );
        assert_eq!(split_host("mail.lab.com"), Some(("mail.lab.com", None)));
        assert_eq!(split_host("[::1]:443"), Some(("[::1]", Some(443))));
        assert_eq!(split_host("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_host("127.0.0.1:1"), Some(("127.0.0.1", Some(1))));
        assert_eq!(split_host("[::1]evil.com"), None);
        assert_eq!(split_host("mail.lab.com:https"), None);
        assert_eq!(split_host("mail.lab.com:"), None);
        assert_eq!(split_host("mail.lab.com:99999"), None);
        assert_eq!(split_host("[::1"), None);
    }
}

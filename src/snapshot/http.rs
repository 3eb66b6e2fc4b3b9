//! The HTTP side of one config: the router, each service's timeouts and
//! metric handles, the rewrite plan, the names the array answers to and
//! hyper's connection settings. Part of the [`Snapshot`](super::Snapshot),
//! built with it and swapped with it; `proxy` reads it.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus::{Histogram, IntCounter};

use super::router::Router;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::rewrite::{MemberIdentity, RewritePlan};
use crate::security::Shields;

/// A service with its metric handles resolved once.
#[derive(Debug)]
pub struct ServiceRt {
    pub name: String,
    pub idle_timeout: Duration,
    pub response_timeout: Duration,
    pub rewrite: bool,
    /// Autodiscover answers get the EXCH-aware rewriter.
    pub autodiscover: bool,
    /// Request bodies may name the mailbox (Autodiscover, EWS): a bounded
    /// peek looks when the head did not.
    pub peek_body: bool,
    pub duration: Histogram,
    pub retries: IntCounter,
    pub rewrites: IntCounter,
    pub affinity_moves: IntCounter,
    /// `casarray_mailbox_routing_total` for `active`, `fallback`,
    /// `unknown`.
    pub routing: [IntCounter; 3],
}

impl ServiceRt {
    /// Counts one routing result (`active`, `fallback`, anything else:
    /// `unknown`).
    pub fn count_routing(&self, result: &str) {
        let i = match result {
            "active" => 0,
            "fallback" => 1,
            _ => 2,
        };
        self.routing[i].inc();
    }
}

/// The HTTP side of one config, ready to serve.
pub struct Frontend {
    pub router: Router,
    /// Indexed like `Config::services`.
    pub services: Box<[ServiceRt]>,
    pub plan: Arc<RewritePlan>,
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

impl Frontend {
    /// The HTTP side of `cfg`; every service's series exist from here on.
    /// The lockout tables are handed on from `previous` (the frontend this
    /// one replaces).
    pub fn build(cfg: &Config, metrics: &Metrics, previous: Option<&Frontend>) -> Self {
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
                peek_body: s.name.eq_ignore_ascii_case("autodiscover")
                    || s.name.eq_ignore_ascii_case("ews"),
                affinity_moves: metrics.affinity_moves.with_label_values(&[&s.name]),
                duration: metrics.request_duration.with_label_values(&[&s.name]),
                retries: metrics.upstream_retries.with_label_values(&[&s.name]),
                rewrites: metrics.rewrites.with_label_values(&[&s.name]),
                routing: ["active", "fallback", "unknown"]
                    .map(|r| metrics.mailbox_routing.with_label_values(&[&s.name, r])),
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
        Frontend {
            http1: http1_builder(cfg),
            http2: http2_builder(cfg),
            router,
            services,
            plan,
            hosts: hosts.into_boxed_slice(),
            public_origin,
            public_name: public,
            shields: Arc::new(Shields::build(cfg, metrics, previous.map(|p| &*p.shields))),
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

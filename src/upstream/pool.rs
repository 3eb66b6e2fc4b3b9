//! Keep-alive HTTP/1.1 connections to the members.
//!
//! One client holds a pool per member address. Idle connections are closed
//! before IIS would close them (its keep-alive is 120 s), so a request rarely
//! meets a connection the server is closing; when it does, the client sends
//! it again on a fresh connection (the request was not written yet).

use std::time::Duration;

use http_body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::ProxyConfig;

/// The client type used to reach members.
pub type UpstreamClient<B> = Client<HttpConnector, B>;

/// A pooled HTTP/1.1 client with the proxy's connect timeout and pool limits.
pub fn client<B>(cfg: &ProxyConfig) -> UpstreamClient<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(cfg.connect_timeout));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_reuse_address(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_member)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .retry_canceled_requests(true)
        // The public Host is set by the proxy and must be kept.
        .set_host(false)
        .http1_max_buf_size(512 * 1024)
        .build(connector)
}

//! Reading requests: bounded bodies, query parameters, path prefixes.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::mock::http::form;
use crate::mock::http::response::{self, Body};

/// The largest body read whole (SOAP, POX, forms): 4 MiB.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Reads a whole request body of at most `limit` bytes; a larger one is
/// answered `413`, a broken one `400`.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(response::status(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Err(_) => Err(response::status(StatusCode::BAD_REQUEST)),
    }
}

/// The first value of query parameter `name` (case-insensitive).
pub fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    let pairs = form::parse(uri.query()?);
    form::get(&pairs, name).map(str::to_string)
}

/// Whether the lower-cased `path` is `prefix` or below it (`prefix` given
/// in lower case, without a trailing slash).
pub fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_queries() {
        assert!(under("/owa", "/owa"));
        assert!(under("/owa/auth.owa", "/owa"));
        assert!(!under("/owafoo", "/owa"));
        let uri: http::Uri = "/rpc/rpcproxy.dll?ex1.lab.local:6001&Bytes=10"
            .parse()
            .unwrap();
        assert_eq!(query_param(&uri, "bytes").as_deref(), Some("10"));
        assert_eq!(query_param(&uri, "none"), None);
    }
}

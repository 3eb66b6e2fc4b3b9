//! Header rules of the forwarding path: hop-by-hop headers (RFC 9110
//! section 7.6.1) are removed in both directions, and the array adds
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` on the way in.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Headers that describe one connection, never forwarded (with
/// `Keep-Alive`, and `Proxy-Connection` among every `Proxy-*`).
const HOP_BY_HOP: &[&HeaderName] = &[
    &header::CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop headers and every header `Connection` names.
/// Allocates nothing for the usual single `Connection` header.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by Connection first, while it is still there. Its
    // values are taken out (they share the request's buffer: no copy) so
    // that the names they list can be removed from the map.
    let mut values = headers.get_all(header::CONNECTION).iter();
    if let Some(first) = values.next().cloned() {
        let more: Vec<HeaderValue> = values.cloned().collect();
        for value in std::iter::once(&first).chain(&more) {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                // By &str: looked up without making a HeaderName; a token
                // that is no header name finds nothing.
                headers.remove(token);
            }
        }
    }
    // One pass over the names says whether there is anything to remove:
    // cheaper than a hash lookup per listed name, and usually nothing is.
    let (mut listed, mut proxy) = (false, false);
    for k in headers.keys() {
        listed |= HOP_BY_HOP.contains(&k) || *k == KEEP_ALIVE;
        // Any other Proxy-* header is meant for a proxy, that is for us.
        proxy |= k.as_str().starts_with("proxy-");
    }
    if listed {
        for name in HOP_BY_HOP {
            headers.remove(*name);
        }
        headers.remove(&KEEP_ALIVE);
    }
    if proxy {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for n in names {
            headers.remove(n);
        }
    }
}

/// The client's address as an `X-Forwarded-For` value, made once per
/// client connection.
pub fn client_value(client: IpAddr) -> HeaderValue {
    // An IP address in text is always a valid header value.
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds the client (`client_value`) to `X-Forwarded-For`, appending to what
/// a previous proxy wrote, and sets `X-Forwarded-Proto: https` and
/// `X-Forwarded-Host`.
pub fn add_forwarded(headers: &mut HeaderMap, client: &HeaderValue, host: &HeaderValue) {
    let appended = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prev) if !prev.trim_ascii().is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
        _ => None,
    };
    headers.insert(
        X_FORWARDED_FOR.clone(),
        appended.unwrap_or_else(|| client.clone()),
    );
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    headers.insert(X_FORWARDED_HOST.clone(), host.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRAILER, HeaderValue::from_static("x"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("proxy-foo", HeaderValue::from_static("x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        let client = client_value("127.0.0.1".parse().unwrap());
        let host = HeaderValue::from_static("mail.lab.com");
        add_forwarded(&mut h, &client, &host);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "mail.lab.com");
        // A blank one from the client is replaced; IPv6 as written.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("  "));
        add_forwarded(&mut h, &client_value("::1".parse().unwrap()), &host);
        assert_eq!(h["x-forwarded-for"], "::1");
    }
}

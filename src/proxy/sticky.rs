//! Affinity on the forwarding path: which member a request sticks to, and
//! the array's own affinity cookie.

use http::header::{self, HeaderMap, HeaderValue};

use crate::config::Affinity;
use crate::upstream::Upstreams;

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// `Set-Cookie` for the array's affinity cookie: opaque, HttpOnly, Secure.
pub fn set_cookie(name: &str, token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// The first member a request goes to under `affinity`, and whether its
/// sticky member had to be passed over (a move). `None`: no member.
pub fn first_pick(
    upstreams: &Upstreams,
    s: usize,
    affinity: &Affinity,
    cookie_name: &str,
    headers: &HeaderMap,
    client: std::net::IpAddr,
) -> Option<(usize, bool)> {
    match affinity {
        Affinity::None => upstreams.pick(s, &[]).map(|m| (m, false)),
        Affinity::Cookie => {
            match cookie(headers, cookie_name).and_then(|t| upstreams.by_token(t)) {
                Some(m) if upstreams.backends()[m].eligible(s) => Some((m, false)),
                Some(_) => upstreams.pick(s, &[]).map(|m| (m, true)),
                None => upstreams.pick(s, &[]).map(|m| (m, false)),
            }
        }
        Affinity::SourceIp => {
            let key = match client {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            upstreams.pick_hashed(s, &key, &[])
        }
        Affinity::Header(name) => match headers.get(name.as_str()) {
            Some(v) => upstreams.pick_hashed(s, v.as_bytes(), &[]),
            None => upstreams.pick(s, &[]).map(|m| (m, false)),
        },
    }
}

/// A retry's member: hashed affinities keep their order, others take turns.
pub fn next_pick(
    upstreams: &Upstreams,
    s: usize,
    affinity: &Affinity,
    headers: &HeaderMap,
    client: std::net::IpAddr,
    tried: &[usize],
) -> Option<usize> {
    match affinity {
        Affinity::SourceIp => {
            let key = match client {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            upstreams.pick_hashed(s, &key, tried).map(|(m, _)| m)
        }
        Affinity::Header(name) => match headers.get(name.as_str()) {
            Some(v) => upstreams
                .pick_hashed(s, v.as_bytes(), tried)
                .map(|(m, _)| m),
            None => upstreams.pick(s, tried),
        },
        Affinity::None | Affinity::Cookie => upstreams.pick(s, tried),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; casarray_owa=abc ; b=2"),
        );
        assert_eq!(cookie(&h, "casarray_owa"), Some("abc"));
        assert_eq!(cookie(&h, "casarray_ews"), None);
        h.append(header::COOKIE, HeaderValue::from_static("casarray_ews=def"));
        assert_eq!(cookie(&h, "casarray_ews"), Some("def"));
    }

    #[test]
    fn set_cookie_is_secure_and_http_only() {
        let v = set_cookie("casarray_owa", "0123456789abcdef").unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("casarray_owa=0123456789abcdef;"));
        assert!(v.contains("Secure") && v.contains("HttpOnly"));
    }
}

//! `affinity = "cookie"`: the array's own cookie names the member.
//!
//! The cookie (`casarray_<service>`) holds an opaque token per member (see
//! [`cookie_token`]); a client without it, or whose member is out, takes
//! the next round-robin turn and is given the cookie of the member that
//! answered. Retries take turns.

use aws_lc_rs::digest;
use http::header::{self, HeaderMap, HeaderValue};

use super::{Candidates, Keys, Pick, Selector};
use crate::upstream::member::Member;

/// The opaque token naming a member in an affinity cookie: 16 hex digits of
/// SHA-256 over the array's and the member's names and address, the same
/// on every instance of the array and across restarts, and naming no member
/// in clear.
pub fn cookie_token(array: &str, member: &str, address: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in ["casarray-affinity", array, member, address] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let d = ctx.finish();
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The cookie rule of one service.
#[derive(Debug)]
pub struct CookieAffinity {
    /// `casarray_<service>`.
    name: String,
}

impl CookieAffinity {
    pub fn new(service: &str) -> Self {
        CookieAffinity {
            name: format!("casarray_{service}"),
        }
    }
}

impl Selector for CookieAffinity {
    fn select(&self, c: &Candidates<'_>, keys: &Keys<'_>, tried: &[usize]) -> Option<Pick> {
        if !tried.is_empty() {
            return c.round_robin(tried).map(Pick::stay);
        }
        match cookie(keys.headers, &self.name).and_then(|t| c.by_token(t)) {
            Some(m) if c.eligible(m) => Some(Pick::stay(m)),
            Some(_) => c.round_robin(tried).map(|member| Pick {
                member,
                moved: true,
            }),
            None => c.round_robin(tried).map(Pick::stay),
        }
    }

    fn stick(&self, keys: &Keys<'_>, member: &Member) -> Option<HeaderValue> {
        if cookie(keys.headers, &self.name) == Some(member.token.as_str()) {
            return None;
        }
        set_cookie(&self.name, &member.token)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tests::upstreams;

    #[test]
    fn tokens_are_stable_opaque_and_distinct() {
        let a = cookie_token("mail.lab.com", "EX1", "127.0.0.1:9001");
        assert_eq!(a, cookie_token("mail.lab.com", "EX1", "127.0.0.1:9001"));
        assert_ne!(a, cookie_token("mail.lab.com", "EX2", "127.0.0.1:9002"));
        assert_eq!(a.len(), 16);
        assert!(!a.to_ascii_lowercase().contains("ex1"));
    }

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

    #[test]
    fn sticks_moves_and_tells_the_client() {
        let (_dir, up) = upstreams(3, "affinity = \"cookie\"");
        let token = up.members()[2].token.clone();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("casarray_owa={token}")).unwrap(),
        );
        let keys = Keys {
            headers: &h,
            client: "192.0.2.1".parse().unwrap(),
            preferred: None,
        };
        for _ in 0..4 {
            let mut sel = up.select(0, keys);
            assert_eq!(sel.next(), Some(2));
            assert!(!sel.moved());
            assert_eq!(sel.stick(2), None, "the client has the cookie");
            assert!(sel.stick(0).is_some(), "a retry elsewhere moves the cookie");
        }
        up.members()[2].state.set_draining(true);
        let mut sel = up.select(0, keys);
        let m = sel.next().unwrap();
        assert_ne!(m, 2);
        assert!(sel.moved());
    }
}

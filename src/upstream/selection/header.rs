//! `affinity = "header:<name>"`: a request header's value, hashed over the
//! members by rendezvous hashing; requests without the header take turns.

use http::HeaderName;

use super::{rendezvous, Candidates, Keys, Pick, Selector};

#[derive(Debug)]
pub struct HeaderAffinity {
    /// Parsed once; `None` only for a name the config check would refuse.
    name: Option<HeaderName>,
}

impl HeaderAffinity {
    /// `name`: the lowercase header name the config gives.
    pub fn new(name: &str) -> Self {
        HeaderAffinity {
            name: HeaderName::from_bytes(name.as_bytes()).ok(),
        }
    }
}

impl Selector for HeaderAffinity {
    fn select(&self, c: &Candidates<'_>, keys: &Keys<'_>, tried: &[usize]) -> Option<Pick> {
        match self.name.as_ref().and_then(|n| keys.headers.get(n)) {
            Some(v) => rendezvous::pick(c, v.as_bytes(), tried),
            None => c.round_robin(tried).map(Pick::stay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tests::upstreams;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn the_same_value_goes_to_the_same_member() {
        let (_dir, up) = upstreams(3, "affinity = \"header:x-anchormailbox\"");
        let mut h = HeaderMap::new();
        h.insert("x-anchormailbox", HeaderValue::from_static("alice@lab.com"));
        let keys = Keys {
            headers: &h,
            client: "192.0.2.1".parse().unwrap(),
            preferred: None,
        };
        let first = up.select(0, keys).next().unwrap();
        for _ in 0..10 {
            assert_eq!(up.select(0, keys).next(), Some(first));
        }
        // Without the header: turns.
        let none = HeaderMap::new();
        let keys = Keys {
            headers: &none,
            ..keys
        };
        let picked: std::collections::HashSet<_> =
            (0..6).filter_map(|_| up.select(0, keys).next()).collect();
        assert_eq!(picked.len(), 3);
    }
}

//! `affinity = "source-ip"`: the client's address, hashed over the members
//! by rendezvous hashing (retries keep the hashed order).

use std::net::IpAddr;

use super::{rendezvous, Candidates, Keys, Pick, Selector};

#[derive(Debug)]
pub struct SourceIpAffinity;

impl Selector for SourceIpAffinity {
    fn select(&self, c: &Candidates<'_>, keys: &Keys<'_>, tried: &[usize]) -> Option<Pick> {
        // The address's octets, on the stack.
        match keys.client {
            IpAddr::V4(v4) => rendezvous::pick(c, &v4.octets(), tried),
            IpAddr::V6(v6) => rendezvous::pick(c, &v6.octets(), tried),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tests::upstreams;
    use http::HeaderMap;

    #[test]
    fn a_client_sticks_and_moves_only_when_its_member_is_out() {
        let (_dir, up) = upstreams(3, "affinity = \"source-ip\"");
        let h = HeaderMap::new();
        let keys = Keys {
            headers: &h,
            client: "192.0.2.77".parse().unwrap(),
            preferred: None,
        };
        let first = up.select(0, keys).next().unwrap();
        for _ in 0..10 {
            assert_eq!(up.select(0, keys).next(), Some(first));
        }
        up.members()[first].state.set_draining(true);
        let mut sel = up.select(0, keys);
        assert_ne!(sel.next(), Some(first));
        assert!(sel.moved());
        // Every other member, in hashed order, then nobody.
        assert_eq!(sel.count(), 1);
    }
}

//! Which member a request goes to, and where it goes when that one fails.
//!
//! A service's selection rule (its `affinity`) is one [`Selector`], one
//! file each: [`round_robin`] (`none`), [`cookie`], [`source_ip`],
//! [`header`], and [`least_connections`] for L4 sessions (SMTP). [`Upstreams::select`](super::Upstreams::select) gives the
//! forwarding path a [`Selection`]: an iterator that yields the first
//! member and then the fallbacks, never one already tried, and says what
//! the client must be told (a cookie to set, a move that happened).
//!
//! Before any rule, a request's preferred member ([`Keys::preferred`]: the
//! member that challenged an NTLM login, next the server holding a
//! mailbox's active copy) is taken when it can serve.
//!
//! Adding a rule: a file here with a type that implements [`Selector`],
//! a variant in `config::Affinity` with its parsing, and its arm in
//! [`for_affinity`]. docs/ARCHITECTURE.md walks through it.

pub mod cookie;
pub mod header;
pub mod least_connections;
pub mod rendezvous;
pub mod round_robin;
pub mod source_ip;

use std::fmt::Debug;
use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};

use super::member::Member;
use crate::config::Affinity;
use round_robin::RoundRobin;

/// Most members one request tries: 8.
pub const MAX_TRIES: usize = 8;

/// What a request offers the rules to decide by. Borrowed from the request:
/// building it costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    /// The request's headers (cookies, hashed headers).
    pub headers: &'a HeaderMap,
    /// The client's address.
    pub client: IpAddr,
    /// A member to take first when it is eligible and not tried yet.
    pub preferred: Option<usize>,
}

/// One choice of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub member: usize,
    /// The member the request sticks to was passed over (unhealthy or
    /// draining): the client moved.
    pub moved: bool,
}

impl Pick {
    /// A choice that moved nobody.
    pub fn stay(member: usize) -> Self {
        Pick {
            member,
            moved: false,
        }
    }
}

/// A selection rule: one per service, made when a config is loaded.
pub trait Selector: Send + Sync + Debug {
    /// The member for a request with `keys`, among the eligible candidates
    /// not in `tried`; `None` when there is none.
    fn select(&self, c: &Candidates<'_>, keys: &Keys<'_>, tried: &[usize]) -> Option<Pick>;

    /// After `member` answered: a `Set-Cookie` value that keeps the client
    /// there, when the rule needs one and the client lacks it.
    fn stick(&self, _keys: &Keys<'_>, _member: &Member) -> Option<HeaderValue> {
        None
    }
}

/// The selector of `affinity` for the service `service` (its name names
/// the affinity cookie).
pub fn for_affinity(affinity: &Affinity, service: &str) -> Box<dyn Selector> {
    match affinity {
        Affinity::None => Box::new(round_robin::NoAffinity),
        Affinity::Cookie => Box::new(cookie::CookieAffinity::new(service)),
        Affinity::SourceIp => Box::new(source_ip::SourceIpAffinity),
        Affinity::Header(name) => Box::new(header::HeaderAffinity::new(name)),
    }
}

/// The members of one config as a rule sees them for one service.
pub struct Candidates<'a> {
    members: &'a [Member],
    service: usize,
    turns: &'a RoundRobin,
}

impl<'a> Candidates<'a> {
    pub(super) fn new(members: &'a [Member], service: usize, turns: &'a RoundRobin) -> Self {
        Candidates {
            members,
            service,
            turns,
        }
    }

    /// Every member of the config, eligible or not.
    pub fn members(&self) -> &'a [Member] {
        self.members
    }

    /// Member `m` is healthy for the service and not draining.
    #[inline]
    pub fn eligible(&self, m: usize) -> bool {
        self.members
            .get(m)
            .is_some_and(|b| b.eligible(self.service))
    }

    /// The service's next round-robin turn among the eligible members not
    /// in `tried` (lock-free: one atomic increment).
    #[inline]
    pub fn round_robin(&self, tried: &[usize]) -> Option<usize> {
        self.turns.pick(|m| self.eligible(m), tried)
    }

    /// The next round-robin turn among the eligible members not in `tried`
    /// for which `also` holds.
    #[inline]
    pub fn round_robin_where(
        &self,
        also: impl Fn(usize) -> bool,
        tried: &[usize],
    ) -> Option<usize> {
        self.turns.pick(|m| self.eligible(m) && also(m), tried)
    }

    /// The member whose affinity cookie token is `token`.
    pub fn by_token(&self, token: &str) -> Option<usize> {
        self.members.iter().position(|b| b.token == token)
    }
}

/// The members one request tries, in order. See the module docs.
pub struct Selection<'a> {
    candidates: Candidates<'a>,
    selector: &'a dyn Selector,
    keys: Keys<'a>,
    tried: [usize; MAX_TRIES],
    attempts: usize,
    moved: bool,
}

impl<'a> Selection<'a> {
    pub(super) fn new(
        candidates: Candidates<'a>,
        selector: &'a dyn Selector,
        keys: Keys<'a>,
    ) -> Self {
        Selection {
            candidates,
            selector,
            keys,
            tried: [usize::MAX; MAX_TRIES],
            attempts: 0,
            moved: false,
        }
    }

    /// Members handed out so far.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The members handed out so far, in order.
    pub fn tried(&self) -> &[usize] {
        &self.tried[..self.attempts]
    }

    /// Takes `member` first from now on when it is eligible and not tried
    /// (a mailbox's active copy found elsewhere after a failure).
    pub fn prefer(&mut self, member: usize) {
        self.keys.preferred = Some(member);
    }

    /// The first member had to pass over the member the request sticks to.
    pub fn moved(&self) -> bool {
        self.moved
    }

    /// What the answer of `member` must carry so the client sticks to it
    /// (a `Set-Cookie`), if anything.
    pub fn stick(&self, member: usize) -> Option<HeaderValue> {
        let m = self.candidates.members.get(member)?;
        self.selector.stick(&self.keys, m)
    }

    fn choose(&self) -> Option<Pick> {
        let tried = self.tried();
        if let Some(p) = self.keys.preferred {
            if self.candidates.eligible(p) && !tried.contains(&p) {
                return Some(Pick::stay(p));
            }
        }
        self.selector.select(&self.candidates, &self.keys, tried)
    }
}

impl Iterator for Selection<'_> {
    type Item = usize;

    /// The next member to try; `None` when no eligible member is left
    /// untried, or after [`MAX_TRIES`].
    fn next(&mut self) -> Option<usize> {
        if self.attempts == MAX_TRIES {
            return None;
        }
        let pick = self.choose()?;
        if self.attempts == 0 {
            self.moved = pick.moved;
        }
        self.tried[self.attempts] = pick.member;
        self.attempts += 1;
        Some(pick.member)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::upstream::tests::upstreams;

    fn keys(headers: &HeaderMap) -> Keys<'_> {
        Keys {
            headers,
            client: "192.0.2.1".parse().unwrap(),
            preferred: None,
        }
    }

    #[test]
    fn yields_each_eligible_member_once() {
        let (_dir, up) = upstreams(3, "");
        let h = HeaderMap::new();
        let mut got: Vec<usize> = up.select(0, keys(&h)).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        up.members()[1].state.set_draining(true);
        let mut got: Vec<usize> = up.select(0, keys(&h)).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 2]);
    }

    #[test]
    fn the_preferred_member_comes_first_when_it_can_serve() {
        let (_dir, up) = upstreams(3, "");
        let h = HeaderMap::new();
        for _ in 0..5 {
            let mut k = keys(&h);
            k.preferred = Some(2);
            let mut sel = up.select(0, k);
            assert_eq!(sel.next(), Some(2));
            assert_ne!(sel.next(), Some(2));
        }
        up.members()[2].state.set_draining(true);
        let mut k = keys(&h);
        k.preferred = Some(2);
        assert!(up.select(0, k).all(|m| m != 2));
    }

    #[test]
    fn stops_after_max_tries() {
        let (_dir, up) = upstreams(10, "");
        let h = HeaderMap::new();
        assert_eq!(up.select(0, keys(&h)).count(), MAX_TRIES);
    }
}

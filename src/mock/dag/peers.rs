//! What this server knows of the others: when it last heard from each
//! (any heartbeat it sent that was answered, or any it received), when
//! the last answered heartbeat it sent left (that confirms the peer's vote
//! until then plus the quorum lease), and the peer's last report.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::report::PeerView;

#[derive(Debug, Default, Clone)]
struct PeerInfo {
    last_heard_ms: u64,
    confirmed_sent_ms: u64,
    view: Option<PeerView>,
    in_flight: bool,
    error: Option<String>,
}

/// The peer table, keyed by upper-cased server name.
#[derive(Debug, Default)]
pub struct Peers {
    inner: Mutex<BTreeMap<String, PeerInfo>>,
}

impl Peers {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut PeerInfo) -> T) -> T {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(name.to_ascii_uppercase()).or_default())
    }

    /// `name` was heard from at `now` (it sent us a heartbeat).
    pub fn heard(&self, name: &str, now: u64) {
        self.with(name, |p| p.last_heard_ms = p.last_heard_ms.max(now));
    }

    /// A heartbeat sent at `sent` was answered at `now` with `view`.
    pub fn answered(&self, name: &str, sent: u64, now: u64, view: PeerView) {
        self.with(name, |p| {
            p.last_heard_ms = p.last_heard_ms.max(now);
            p.confirmed_sent_ms = p.confirmed_sent_ms.max(sent);
            p.view = Some(view);
            p.error = None;
        });
    }

    /// A heartbeat failed.
    pub fn failed(&self, name: &str, error: String) {
        self.with(name, |p| p.error = Some(error));
    }

    /// When `name` was last heard from (0: never).
    pub fn last_heard(&self, name: &str) -> u64 {
        self.with(name, |p| p.last_heard_ms)
    }

    /// When the last answered heartbeat to `name` was sent (0: never).
    pub fn confirmed_sent(&self, name: &str) -> u64 {
        self.with(name, |p| p.confirmed_sent_ms)
    }

    /// The last report of `name`.
    pub fn view(&self, name: &str) -> Option<PeerView> {
        self.with(name, |p| p.view.clone())
    }

    /// The last heartbeat error of `name`.
    pub fn error(&self, name: &str) -> Option<String> {
        self.with(name, |p| p.error.clone())
    }

    /// Marks a heartbeat to `name` as under way; false if one already is.
    pub fn begin(&self, name: &str) -> bool {
        self.with(name, |p| !std::mem::replace(&mut p.in_flight, true))
    }

    /// The heartbeat to `name` is over.
    pub fn end(&self, name: &str) {
        self.with(name, |p| p.in_flight = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest() {
        let peers = Peers::default();
        assert_eq!(peers.last_heard("EX2"), 0);
        peers.heard("ex2", 10);
        peers.heard("EX2", 5);
        assert_eq!(peers.last_heard("EX2"), 10);
        let view = PeerView {
            server: "EX2".into(),
            at_unix_ms: 20,
            state_version: 3,
            quorum: true,
            copies: Default::default(),
        };
        peers.answered("EX2", 15, 20, view.clone());
        assert_eq!(peers.confirmed_sent("EX2"), 15);
        assert_eq!(peers.last_heard("EX2"), 20);
        assert_eq!(peers.view("EX2"), Some(view));
        assert!(peers.begin("EX2"));
        assert!(!peers.begin("EX2"));
        peers.end("EX2");
        assert!(peers.begin("EX2"));
        peers.failed("EX2", "refused".into());
        assert_eq!(peers.error("EX2").as_deref(), Some("refused"));
    }
}

//! The Outlook Anywhere counters of one mock server (`GET /mock/state`
//! shows them); `rpc.rs` moves them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of both channels, shown by `GET /mock/state`.
#[derive(Debug, Default)]
pub struct RpcStats {
    pub(super) in_active: AtomicU64,
    pub(super) in_completed: AtomicU64,
    pub(super) in_bytes_total: AtomicU64,
    pub(super) in_last_bytes: AtomicU64,
    pub(super) out_active: AtomicU64,
    pub(super) out_completed: AtomicU64,
    pub(super) out_bytes_total: AtomicU64,
}

impl RpcStats {
    /// The counters as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "in_active": get(&self.in_active),
            "in_completed": get(&self.in_completed),
            "in_bytes_total": get(&self.in_bytes_total),
            "in_last_bytes": get(&self.in_last_bytes),
            "out_active": get(&self.out_active),
            "out_completed": get(&self.out_completed),
            "out_bytes_total": get(&self.out_bytes_total),
        })
    }
}

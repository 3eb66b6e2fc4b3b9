//! TLS session ticket keys shared by every instance, so that a client
//! resumes its session on any of them.
//!
//! Three AES-256-GCM keys (aws-lc-rs, the array's crypto) live in etcd
//! under `<prefix>/tickets`: `current` seals new tickets; `next` (already
//! known to every instance before it becomes current) and `previous` (the
//! one before) still open them. Every `[cluster] ticket_rotation` one
//! instance rotates (previous = current, current = next, a fresh next),
//! by compare-and-swap on the key's revision, so instances never race each
//! other into different keys.
//!
//! A key exists in etcd and in the processes' memory only: never logged
//! (`Debug` prints key ids), never in the state file.
//!
//! A ticket is `key id (4 bytes) | nonce (12) | sealed state | tag (16)`,
//! the key id as associated data.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::client::{bounded, ClusterError};
use super::view::tickets_key;
use super::Shared;

/// Bytes of a key id at the head of a ticket.
const ID_LEN: usize = 4;
/// Bytes of an AES-256-GCM tag.
const TAG_LEN: usize = 16;
/// Bytes of an AES-256 key.
const KEY_LEN: usize = 32;

/// One key as stored in etcd.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKey {
    pub id: u32,
    /// Base64 of 32 bytes.
    key: String,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketKey({:08x})", self.id)
    }
}

/// The key set as stored in etcd (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKeys {
    /// When `current` became current (Unix ms).
    pub rotated_unix_ms: u64,
    pub previous: Option<TicketKey>,
    pub current: TicketKey,
    pub next: TicketKey,
}

/// Keys cannot be made (the system's random source failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a TLS session ticket key")]
pub struct KeyGenError;

impl TicketKey {
    fn generate() -> Result<Self, KeyGenError> {
        let rng = SystemRandom::new();
        let mut bytes = [0u8; KEY_LEN + ID_LEN];
        rng.fill(&mut bytes).map_err(|_| KeyGenError)?;
        let (key, id) = bytes.split_at(KEY_LEN);
        let mut id4 = [0u8; ID_LEN];
        id4.copy_from_slice(id);
        Ok(TicketKey {
            id: u32::from_be_bytes(id4),
            key: base64::engine::general_purpose::STANDARD.encode(key),
        })
    }

    fn sealer(&self) -> Option<Sealer> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .ok()?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(Sealer {
            id: self.id.to_be_bytes(),
            key: LessSafeKey::new(key),
        })
    }
}

/// The key set that should follow `keys` at `now_unix_ms`: a first one
/// when there is none, a rotation once `period` has passed since the last;
/// `None` when `keys` still holds.
pub fn successor(
    keys: Option<&TicketKeys>,
    now_unix_ms: u64,
    period: Duration,
) -> Result<Option<TicketKeys>, KeyGenError> {
    match keys {
        None => Ok(Some(TicketKeys {
            rotated_unix_ms: now_unix_ms,
            previous: None,
            current: TicketKey::generate()?,
            next: TicketKey::generate()?,
        })),
        Some(k) if now_unix_ms.saturating_sub(k.rotated_unix_ms) >= period.as_millis() as u64 => {
            Ok(Some(TicketKeys {
                rotated_unix_ms: now_unix_ms,
                previous: Some(k.current.clone()),
                current: k.next.clone(),
                next: TicketKey::generate()?,
            }))
        }
        Some(_) => Ok(None),
    }
}

struct Sealer {
    id: [u8; ID_LEN],
    key: LessSafeKey,
}

/// The keys in use: `current` seals, every one opens.
struct Sealers {
    current: Sealer,
    /// current, next, previous.
    open: Vec<Sealer>,
}

/// The rustls ticketer of a cluster's instances: the shared keys from
/// etcd. Until the keys are known it issues no ticket (clients do a full
/// handshake).
pub struct ClusterTicketer {
    keys: ArcSwapOption<Sealers>,
    /// Ticket lifetime announced to clients (seconds): the rotation period,
    /// so a ticket is always opened by `current` or `previous`.
    lifetime: u32,
    rng: SystemRandom,
}

impl fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTicketer")
            .field("keys", &self.keys.load().is_some())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl ClusterTicketer {
    /// Rotated every `period`.
    pub fn new(period: Duration) -> Arc<Self> {
        Arc::new(ClusterTicketer {
            keys: ArcSwapOption::empty(),
            lifetime: period.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
            rng: SystemRandom::new(),
        })
    }

    /// Takes the key set read from etcd; a key that cannot be used (bad
    /// base64) keeps the set in use.
    pub fn set(&self, keys: &TicketKeys) {
        let (Some(current), Some(next)) = (keys.current.sealer(), keys.next.sealer()) else {
            tracing::warn!("cluster: TLS ticket keys not usable; kept the last ones");
            return;
        };
        let mut open = vec![keys.current.sealer(), Some(next)];
        open.push(keys.previous.as_ref().and_then(TicketKey::sealer));
        self.keys.store(Some(Arc::new(Sealers {
            current,
            open: open.into_iter().flatten().collect(),
        })));
    }

    /// Whether keys are known.
    pub fn ready(&self) -> bool {
        self.keys.load().is_some()
    }
}

impl rustls::server::ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load_full()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(ID_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&keys.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = keys
            .current
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(keys.current.id),
                &mut out[ID_LEN + NONCE_LEN..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < ID_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let keys = self.keys.load_full()?;
        let (id, rest) = cipher.split_at(ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let sealer = keys.open.iter().find(|s| s.id == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = sealer
            .key
            .open_in_place(nonce, Aad::from(sealer.id), &mut buf)
            .ok()?;
        let n = plain.len();
        buf.truncate(n);
        Some(buf)
    }
}

/// Makes the first key set, or rotates it when its period is over, by
/// compare-and-swap on `<prefix>/tickets`: when another instance did it
/// first, nothing is written (its keys arrive through the watch).
/// `Ok(true)` when this instance wrote.
pub(super) async fn rotate_once(shared: &Shared) -> Result<bool, ClusterError> {
    let view = shared.view.load_full();
    let seen = view.tickets.as_ref();
    let Some(next) = successor(
        seen.map(|(k, _)| k),
        super::now_unix_ms(),
        shared.cfg.ticket_rotation,
    )?
    else {
        return Ok(false);
    };
    let key = tickets_key(&shared.cfg.prefix);
    let compare = match seen {
        None => Compare::version(key.clone(), CompareOp::Equal, 0),
        Some((_, revision)) => Compare::mod_revision(key.clone(), CompareOp::Equal, *revision),
    };
    let value = serde_json::to_vec(&next).map_err(|_| KeyGenError)?;
    let txn = Txn::new()
        .when([compare])
        .and_then([TxnOp::put(key, value, None)]);
    let mut client = shared.client()?;
    let resp = bounded(shared.cfg.request_timeout, client.txn(txn)).await?;
    if !resp.succeeded() {
        return Ok(false);
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    shared
        .wait_revision(revision, shared.cfg.request_timeout)
        .await;
    tracing::info!(
        current = format_args!("{:08x}", next.current.id),
        "cluster: TLS session ticket keys {}",
        if seen.is_some() { "rotated" } else { "created" }
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn rotation_keeps_next_and_previous() {
        let first = successor(None, 1_000, HOUR).unwrap().unwrap();
        assert!(first.previous.is_none());
        assert_ne!(first.current, first.next);
        assert_eq!(
            successor(Some(&first), 1_000 + 3_599_999, HOUR).unwrap(),
            None
        );
        let second = successor(Some(&first), 1_000 + 3_600_000, HOUR)
            .unwrap()
            .unwrap();
        assert_eq!(second.previous.as_ref(), Some(&first.current));
        assert_eq!(second.current, first.next);
        assert_ne!(second.next, first.next);
        assert_eq!(second.rotated_unix_ms, 3_601_000);
    }

    #[test]
    fn tickets_open_on_another_instance_across_a_rotation() {
        let keys = successor(None, 0, HOUR).unwrap().unwrap();
        let a = ClusterTicketer::new(HOUR);
        let b = ClusterTicketer::new(HOUR);
        assert_eq!(a.encrypt(b"state"), None, "no keys yet: no ticket");
        a.set(&keys);
        b.set(&keys);
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&t).as_deref(), Some(&b"session state"[..]));
        // b rotated first: a's ticket (sealed by the old current) still opens,
        // and b's new tickets (sealed by the old next) open on a.
        let rotated = successor(Some(&keys), HOUR.as_millis() as u64, HOUR)
            .unwrap()
            .unwrap();
        b.set(&rotated);
        assert_eq!(b.decrypt(&t).as_deref(), Some(&b"session state"[..]));
        let t2 = b.encrypt(b"x").unwrap();
        assert_eq!(a.decrypt(&t2).as_deref(), Some(&b"x"[..]));
        // Tampered, truncated or foreign tickets do not open.
        let mut bad = t.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(b.decrypt(&bad), None);
        assert_eq!(b.decrypt(&t[..10]), None);
        let other = ClusterTicketer::new(HOUR);
        other.set(&successor(None, 0, HOUR).unwrap().unwrap());
        assert_eq!(other.decrypt(&t), None);
    }

    #[test]
    fn debug_never_shows_a_key() {
        let keys = successor(None, 0, HOUR).unwrap().unwrap();
        let text = format!("{keys:?}");
        assert!(!text.contains(&keys.current.key), "{text}");
        let t = ClusterTicketer::new(HOUR);
        t.set(&keys);
        assert!(!format!("{t:?}").contains(&keys.current.key));
    }
}

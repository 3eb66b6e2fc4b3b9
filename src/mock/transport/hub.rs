//! The hub transport of one mock server (`--smtp ADDR`): the [`Sink`] its
//! SMTP sessions serve into. Mail for the lab's domain is delivered into
//! the mailbox databases before `250` (`receive`); mail for a domain the
//! send connector routes (`--smtp-route DOMAIN=HOST:PORT`) and mail for a
//! database failing over is queued on disk, a shadow copy placed on a
//! peer hub (`shadow`), then `250`; the connector (`connector`) delivers
//! the queue. `POST /mock/fail/smtp` makes the hub greet `421`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::command::domain_of;
use super::message;
use super::peers::Peers;
use super::queue::{Entry, Queue};
use super::receive::{deliver_local, is_mailbox};
use super::session::{Envelope, Reply, Sink, Spooled};
use super::{shadow, LAB_DOMAIN};
use crate::mock::format::clock::unix_now;
use crate::mock::shared::Shared;

/// A hub's settings.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Where the hub keeps its spool, queue and shadow copies.
    pub work: PathBuf,
    /// Send connector: domain (lower case) -> its mail host.
    pub routes: BTreeMap<String, SocketAddr>,
    /// Largest message, octets.
    pub max_size: u64,
    /// How long a hub waits for a peer to take a shadow copy before it
    /// accepts with one copy.
    pub shadow_wait: Duration,
    /// How long a primary hub must be unreachable before the hub holding
    /// its shadow copies delivers them.
    pub peer_dead_after: Duration,
}

/// One hub.
pub struct Hub {
    pub shared: Arc<Shared>,
    pub settings: HubSettings,
    pub peers: Option<Peers>,
    /// Peers that failed to take a shadow copy, passed over until then.
    pub peers_down: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    pub queue: Queue,
    /// Safety Net: copies of what this hub delivered into mailbox
    /// databases, kept `SAFETY_NET_HOLD` and delivered again when a
    /// database's active copy moves (a lossy failover may have lost them).
    pub safety_net: Queue,
    /// Wakes the connector when something is queued.
    pub wake: Notify,
}

impl Hub {
    /// The shadow queue of copies kept for `primary`.
    pub fn shadow_dir(&self, primary: &str) -> PathBuf {
        self.settings.work.join("shadow").join(primary)
    }

    pub(super) async fn blocking<R: Send + 'static>(
        f: impl FnOnce() -> std::io::Result<R> + Send + 'static,
    ) -> std::io::Result<R> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(std::io::Error::other)?
    }

    /// Takes a message from a client: local recipients delivered, the rest
    /// queued with a shadow copy.
    async fn take(&self, env: Envelope, data: Spooled) -> std::io::Result<Reply> {
        tracing::debug!(hub = %self.shared.name, id = %data.id, size = data.size,
            rcpts = ?env.rcpts, client = %env.client, "message received");
        let raw = tokio::fs::read(&data.path).await?;
        let parsed = message::parse(&raw);
        let fallback_id = format!("<{}@{}>", data.id, self.shared.fqdn);
        let msg = parsed.to_new_message(&env.from, &fallback_id);
        let message_id = msg.message_id.clone().unwrap_or(fallback_id);
        let (local, remote): (Vec<String>, Vec<String>) = env
            .rcpts
            .iter()
            .cloned()
            .partition(|r| domain_of(r) == LAB_DOMAIN);
        let mut queued = remote;
        if !local.is_empty() {
            queued.extend(deliver_local(&self.shared, &msg, &local).await);
        }
        let delivered: Vec<String> = local
            .iter()
            .filter(|r| !queued.contains(r))
            .cloned()
            .collect();
        if parsed.message_id.is_none() {
            // The copies that travel on must carry the id delivery
            // deduplicates on.
            let mut with_id = format!("Message-ID: {message_id}\r\n").into_bytes();
            with_id.extend_from_slice(&raw);
            crate::atomic_file::write_atomically(&data.path, &with_id)?;
        }
        drop(raw);
        let base = Entry {
            id: data.id.clone(),
            from: env.from.clone(),
            rcpts: env.rcpts.clone(),
            message_id: message_id.clone(),
            created: unix_now(),
            primary: self.shared.name.clone(),
            shadow: None,
            delivered: None,
        };
        if !delivered.is_empty() {
            let kept = Entry {
                rcpts: delivered,
                delivered: Some(unix_now()),
                ..base.clone()
            };
            let (net, path) = (self.safety_net.clone(), data.path.clone());
            Self::blocking(move || net.put_copy(&kept, &path)).await?;
        }
        // A shadow copy of the whole message on a peer before the 250.
        let done = queued.is_empty();
        let shadow = shadow::place(self, &base, &data.path, done).await;
        if done {
            let _ = tokio::fs::remove_file(&data.path).await;
            return Ok(Reply::new(250, format!("2.6.0 {message_id} Delivered")));
        }
        let entry = Entry {
            rcpts: queued,
            shadow,
            ..base
        };
        let (queue, path) = (self.queue.clone(), data.path.clone());
        Self::blocking(move || queue.put(&entry, &path)).await?;
        self.wake.notify_one();
        Ok(Reply::new(
            250,
            format!("2.6.0 {message_id} Queued mail for delivery"),
        ))
    }
}

impl Sink for Hub {
    fn greeting(&self) -> Result<String, Reply> {
        if self.shared.health.is_failed("smtp") {
            return Err(Reply::new(
                421,
                format!("4.3.2 {} Service not available", self.shared.fqdn),
            ));
        }
        Ok(format!(
            "{} Microsoft ESMTP MAIL Service ready (casarray mock hub {})",
            self.shared.fqdn, self.shared.name
        ))
    }

    fn fqdn(&self) -> &str {
        &self.shared.fqdn
    }

    fn trace_comment(&self) -> String {
        format!("{} hub transport", self.shared.name)
    }

    fn extensions(&self) -> Vec<String> {
        vec!["XSHADOW".into()]
    }

    fn max_size(&self) -> u64 {
        self.settings.max_size
    }

    fn spool_dir(&self) -> PathBuf {
        self.settings.work.join("spool")
    }

    fn recipient(&self, rcpt: &str, env: &Envelope) -> Result<(), Reply> {
        if let Some((primary, _, _)) = &env.shadow {
            // Shadow copies only for hubs of the registry (the mock trusts
            // the name; a real hub authenticates its peers).
            let known = self
                .peers
                .as_ref()
                .is_some_and(|p| p.address(primary).is_some());
            return if known {
                Ok(())
            } else {
                Err(Reply::new(550, "5.7.1 Not a peer hub"))
            };
        }
        let domain = domain_of(rcpt);
        if domain == LAB_DOMAIN {
            if is_mailbox(rcpt) {
                return Ok(());
            }
            return Err(Reply::new(550, "5.1.1 User unknown"));
        }
        if self.settings.routes.contains_key(&domain) {
            return Ok(());
        }
        Err(Reply::new(550, "5.7.1 Unable to relay"))
    }

    async fn accept(&self, env: Envelope, data: Spooled) -> Reply {
        let path = data.path.clone();
        let result = match env.shadow.clone() {
            Some((primary, id, delivered)) => {
                shadow::keep(self, &primary, &id, delivered, &env, &data).await
            }
            None => self.take(env, data).await,
        };
        match result {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(hub = %self.shared.name, error = %e, "cannot keep a message");
                let _ = tokio::fs::remove_file(&path).await;
                Reply::new(451, "4.3.0 Local error in processing")
            }
        }
    }

    async fn discard(&self, primary: String, id: String) -> Reply {
        let dir = self.shadow_dir(&primary);
        match Self::blocking(move || shadow::mark_delivered(&dir, &id)).await {
            Ok(()) => Reply::new(250, "2.0.0 Shadow copy marked delivered"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot discard a shadow copy");
                Reply::new(451, "4.3.0 Local error in processing")
            }
        }
    }
}

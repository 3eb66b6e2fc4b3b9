//! Learning the DAG from the members: every health interval (and at once
//! when asked, [`super::Dag::refresh`]) each member's `GET /mock/dag/status`
//! is fetched (with `If-None-Match`, so an unchanged view costs a 304), the
//! directory from one member now and then, and the views are merged into a
//! new [`DagMap`] that replaces the old one only when it differs.
//!
//! Merging trusts each member about its own copies: a database is mounted
//! where the member holding the copy says its copy is `Mounted` (the
//! highest epoch wins should two ever say so), a copy's status and queues
//! come from its own server when that server answered, else from the
//! others' views (`ServiceDown` for a lost server).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::map::{DagMap, Database};
use super::view::{DirectoryView, StatusView};
use super::Dag;
use crate::api::CopyView;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::upstream::connect::Connector;
use crate::upstream::Upstreams;

/// Largest answer read: 1 MiB.
const MAX_ANSWER: usize = 1 << 20;

/// The directory is fetched again after this many polls: 30.
const DIRECTORY_EVERY: u32 = 30;

/// The polling task of one config; dropping this stops it.
#[derive(Debug)]
pub struct DagPoller {
    task: Option<JoinHandle<()>>,
}

impl Drop for DagPoller {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl DagPoller {
    /// With `[dag] enabled`, polls the members of `upstreams` every `[health]
    /// interval`, each answer bounded by `[health] timeout`, into `dag`;
    /// without, does nothing (the map is emptied).
    pub fn start(
        cfg: &Config,
        upstreams: &Arc<Upstreams>,
        dag: Arc<Dag>,
        metrics: &Metrics,
    ) -> Self {
        if !cfg.dag.enabled {
            dag.publish(DagMap::default(), metrics);
            return DagPoller { task: None };
        }
        let members = upstreams
            .members()
            .iter()
            .map(|m| Source {
                name: m.name.clone(),
                host: m.fqdn.clone(),
                address: m.address,
                tls: m.tls.clone(),
                conn: None,
                last: None,
            })
            .collect();
        let poll = Poll {
            connector: upstreams.connector().clone(),
            members,
            directory: Vec::new(),
            polls: 0,
            interval: cfg.health.interval,
            timeout: cfg.health.timeout,
            dag,
            metrics: metrics.clone(),
        };
        DagPoller {
            task: Some(tokio::spawn(poll.run())),
        }
    }
}

/// One member polled.
struct Source {
    name: String,
    host: String,
    address: SocketAddr,
    tls: Option<ServerName<'static>>,
    conn: Option<SendRequest<Empty<Bytes>>>,
    /// Its last view and that view's version.
    last: Option<StatusView>,
}

struct Poll {
    connector: Connector,
    members: Vec<Source>,
    /// (address, GUID, database) of every mailbox.
    directory: Vec<(String, String, String)>,
    polls: u32,
    interval: Duration,
    timeout: Duration,
    dag: Arc<Dag>,
    metrics: Metrics,
}

impl Poll {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.dag.refresh_requested() => {}
            }
            self.once().await;
        }
    }

    /// One round: every member's view, the directory when due, the merge.
    async fn once(&mut self) {
        let (connector, timeout) = (&self.connector, self.timeout);
        let fetched = futures_util::future::join_all(
            self.members
                .iter_mut()
                .map(|m| async move { (m.status(connector, timeout).await, m) }),
        )
        .await;
        let mut views = Vec::new();
        let mut any = None;
        for (fresh, member) in fetched {
            match fresh {
                Some(view) => {
                    any.get_or_insert(member.name.clone());
                    views.push(view);
                }
                None => member.last = None,
            }
        }
        let due = self.directory.is_empty() || self.polls % DIRECTORY_EVERY == 0;
        self.polls = self.polls.wrapping_add(1);
        if due && !views.is_empty() {
            if let Some(dir) = self.fetch_directory().await {
                self.directory = dir;
            }
        }
        let map = merge(&views, &self.directory);
        self.dag.publish(map, &self.metrics);
    }

    async fn fetch_directory(&mut self) -> Option<Vec<(String, String, String)>> {
        let (connector, timeout) = (&self.connector, self.timeout);
        for m in &mut self.members {
            if m.last.is_none() {
                continue;
            }
            let got = m
                .get::<DirectoryView>(connector, timeout, "/mock/directory", None)
                .await;
            if let Ok(Got::Fresh(dir)) = got {
                return Some(
                    dir.mailboxes
                        .into_iter()
                        .map(|e| (e.address, e.guid, e.database))
                        .collect(),
                );
            }
        }
        None
    }
}

/// A fetch's outcome.
enum Got<T> {
    Fresh(T),
    /// 304: the view is the one last fetched.
    Unchanged,
}

impl Source {
    /// This member's view: fetched, or the last one when unchanged; `None`
    /// when the member is unreachable or not in a DAG.
    async fn status(&mut self, connector: &Connector, timeout: Duration) -> Option<StatusView> {
        let etag = self.last.as_ref().map(|v| format!("\"{}\"", v.version));
        match self
            .get::<StatusView>(connector, timeout, "/mock/dag/status", etag.as_deref())
            .await
        {
            Ok(Got::Fresh(view)) => {
                self.last = Some(view.clone());
                Some(view)
            }
            Ok(Got::Unchanged) => self.last.clone(),
            Err(why) => {
                tracing::debug!(member = %self.name, "DAG status: {why}");
                None
            }
        }
    }

    async fn get<T: DeserializeOwned>(
        &mut self,
        connector: &Connector,
        timeout: Duration,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Got<T>, String> {
        let fetch = async {
            let mut conn = match self.conn.take().filter(SendRequest::is_ready) {
                Some(c) => c,
                None => connector
                    .connect(self.address, self.tls.as_ref())
                    .await
                    .map_err(|e| crate::errors::error_chain(&e))?,
            };
            let mut req = Request::get(path)
                .header(header::HOST, &self.host)
                .header(header::USER_AGENT, "casarray-dag/1");
            if let Some(etag) = etag {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            self.conn = Some(conn);
            match status {
                StatusCode::NOT_MODIFIED => Ok(Got::Unchanged),
                StatusCode::OK => serde_json::from_slice(&body)
                    .map(Got::Fresh)
                    .map_err(|e| format!("GET {path}: unexpected JSON: {e}")),
                other => Err(format!("GET {path} answered {other}")),
            }
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or_else(|_| Err(format!("GET {path}: no answer within {timeout:?}")))
    }
}

/// The map of `views` (one per member that answered) and `directory`.
pub fn merge(views: &[StatusView], directory: &[(String, String, String)]) -> DagMap {
    let mut names: Vec<&str> = views
        .iter()
        .flat_map(|v| v.databases.iter().map(|d| d.name.as_str()))
        .collect();
    names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let databases = names
        .into_iter()
        .map(|name| merge_database(views, name))
        .collect();
    DagMap::new(databases, directory)
}

fn merge_database(views: &[StatusView], name: &str) -> Database {
    let of = |v: &'_ StatusView| {
        v.databases
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .cloned()
    };
    let mut mounted: Option<(u64, String)> = None;
    let mut failovers = 0;
    let mut copies: HashMap<String, (bool, CopyView)> = HashMap::new();
    for view in views {
        let Some(db) = of(view) else { continue };
        failovers = failovers.max(db.failovers);
        for c in &db.copies {
            let own = c.server.eq_ignore_ascii_case(&view.server);
            if own && c.status == "Mounted" {
                let epoch = db.epoch.unwrap_or(0);
                if mounted.as_ref().is_none_or(|(e, _)| epoch > *e) {
                    mounted = Some((epoch, c.server.clone()));
                }
            }
            let copy = CopyView {
                server: c.server.clone(),
                activation_preference: c.activation_preference,
                status: c.status.clone(),
                copy_queue: c.copy_queue,
                replay_queue: c.replay_queue,
            };
            let key = c.server.to_ascii_lowercase();
            match copies.get(&key) {
                // A server's word about its own copy is not overwritten.
                Some((true, _)) => {}
                Some((false, _)) if !own => {}
                _ => {
                    copies.insert(key, (own, copy));
                }
            }
        }
    }
    let mut copies: Vec<CopyView> = copies.into_values().map(|(_, c)| c).collect();
    copies.sort_by(|a, b| {
        (a.activation_preference, &a.server).cmp(&(b.activation_preference, &b.server))
    });
    // A copy that is not mounted where the others say so is not Mounted.
    for c in &mut copies {
        let here = mounted
            .as_ref()
            .is_some_and(|(_, s)| s.eq_ignore_ascii_case(&c.server));
        if c.status == "Mounted" && !here {
            c.status = "Dismounted".to_owned();
        }
    }
    Database {
        name: name.to_owned(),
        epoch: mounted.as_ref().map_or(0, |(e, _)| *e),
        mounted: mounted.map(|(_, s)| s),
        failovers,
        copies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::map::Route;

    fn view(json: &str) -> StatusView {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_member_is_trusted_about_its_own_copies() {
        // EX1 says DB02 is mounted on EX2 (old news); EX2 itself says its
        // copy is Dismounted, EX3 that its copy is Mounted (epoch 3).
        let ex1 = view(
            r#"{"server":"EX1","version":4,"databases":[
            {"name":"DB02","epoch":2,"failovers":1,"copies":[
              {"server":"EX2","activation_preference":1,"status":"Mounted"},
              {"server":"EX1","activation_preference":2,"status":"Healthy","copy_queue":3}]}]}"#,
        );
        let ex3 = view(
            r#"{"server":"EX3","version":9,"databases":[
            {"name":"DB02","epoch":3,"failovers":2,"copies":[
              {"server":"EX3","activation_preference":3,"status":"Mounted"},
              {"server":"EX2","activation_preference":1,"status":"ServiceDown"}]}]}"#,
        );
        let map = merge(
            &[ex1, ex3],
            &[("bob@lab.com".into(), String::new(), "DB02".into())],
        );
        assert_eq!(map.route("bob"), Route::Active("EX3"));
        let db = map.database("db02").unwrap();
        assert_eq!(db.failovers, 2);
        let statuses: Vec<(&str, &str, u64)> = db
            .copies
            .iter()
            .map(|c| (c.server.as_str(), c.status.as_str(), c.copy_queue))
            .collect();
        assert_eq!(
            statuses,
            [
                ("EX2", "Dismounted", 0),
                ("EX1", "Healthy", 3),
                ("EX3", "Mounted", 0)
            ]
        );
    }

    #[test]
    fn no_copy_mounted_is_said_so() {
        let ex1 = view(
            r#"{"server":"EX1","databases":[{"name":"DB01","copies":[
            {"server":"EX1","activation_preference":1,"status":"Initializing"}]}]}"#,
        );
        let map = merge(
            &[ex1],
            &[("alice@lab.com".into(), String::new(), "DB01".into())],
        );
        assert_eq!(map.route("alice@lab.com"), Route::NoMountedCopy("DB01"));
        assert!(merge(&[], &[]).is_empty());
    }
}

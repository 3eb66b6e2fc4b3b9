//! The admin API's DAG changes, passed to the members (`dag::command`):
//!
//! - `POST /api/databases/{db}/move-active` `{"server": "EX2"}`
//!   (`Move-ActiveMailboxDatabase`): returns once the copy on EX2 is
//!   mounted, with `{"database","from","active","lost_logs",...}`;
//! - `POST /api/databases/{db}/copies` `{"server": "EX3",
//!   "activation_preference": 3}` (`Add-MailboxDatabaseCopy`): returns once
//!   the new copy is seeded and its queues are empty;
//! - `DELETE /api/databases/{db}/copies/{server}`
//!   (`Remove-MailboxDatabaseCopy`);
//! - `POST /api/databases/{db}/copies/{server}/suspend` and `/resume`.
//!
//! Names are checked against the DAG and the members first (404), so only
//! known names reach a member's URL. A refusal by the DAG keeps its status
//! and reason (409 a copy behind, 503 no quorum...); no member answering
//! is 503. After a change the array's map is refreshed at once, and a
//! move-active answers only when the map shows the new active copy (at
//! most 10 s more), so a `GET /api/databases` right after agrees.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;

use super::reply::{self, Reply};
use crate::dag::command::{self, MAX_WAIT};
use crate::dag::Dag;
use crate::snapshot::Snapshot;

/// Largest request body taken: 64 KiB.
const MAX_BODY: usize = 64 * 1024;

/// How long a move waits for the map to show it: 10 s.
const MAP_WAIT: Duration = Duration::from_secs(10);

/// A DAG change the admin API takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    MoveActive,
    CopyAdd,
    CopyRemove(&'a str),
    /// `true`: suspend; `false`: resume.
    CopySuspend(&'a str, bool),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    server: String,
    #[serde(default)]
    activation_preference: Option<u32>,
    /// `move-active` only: activate even if the source is lost (lossy).
    #[serde(default)]
    force: bool,
}

/// Carries out `change` on database `db`, with the request `body` (JSON,
/// for moves and adds).
pub async fn handle<B>(snap: &Snapshot, dag: &Dag, db: &str, change: Change<'_>, body: B) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let map = dag.map_full();
    let Some(database) = map.database(db).map(|d| d.name.clone()) else {
        let why = if map.is_empty() {
            format!(
                "no database named \"{db}\" in a DAG: the members run none (or none answered yet)"
            )
        } else {
            format!("no database named \"{db}\" in the DAG")
        };
        return reply::error(StatusCode::NOT_FOUND, why);
    };
    let member = |name: &str| {
        snap.upstreams
            .find(name)
            .map(|m| snap.upstreams.members()[m].name.clone())
    };
    let (method, path, payload, server) = match change {
        Change::MoveActive | Change::CopyAdd => {
            let target: Target = match read_json(body).await {
                Ok(t) => t,
                Err(reply) => return reply,
            };
            let Some(server) = member(&target.server) else {
                return unknown_member(&target.server);
            };
            if change == Change::MoveActive {
                let payload = json!({"server": server, "force": target.force});
                let path = format!("/mock/dag/databases/{database}/move-active");
                (Method::POST, path, Some(payload), server)
            } else {
                let Some(preference) = target.activation_preference.filter(|&p| p >= 1) else {
                    return reply::error(
                        StatusCode::BAD_REQUEST,
                        "copy add needs \"activation_preference\": a number from 1",
                    );
                };
                let payload =
                    json!({"server": server, "activation_preference": preference, "wait": true});
                let path = format!("/mock/dag/databases/{database}/copies");
                (Method::POST, path, Some(payload), server)
            }
        }
        Change::CopyRemove(name) => {
            let Some(server) = member(name) else {
                return unknown_member(name);
            };
            let path = format!("/mock/dag/databases/{database}/copies/{server}");
            (Method::DELETE, path, None, server)
        }
        Change::CopySuspend(name, suspend) => {
            let Some(server) = member(name) else {
                return unknown_member(name);
            };
            let verb = if suspend { "suspend" } else { "resume" };
            let path = format!("/mock/dag/databases/{database}/copies/{server}/{verb}");
            (Method::POST, path, None, server)
        }
    };
    let first = [server.as_str()];
    let answer = command::call(
        &snap.upstreams,
        &first,
        method,
        &path,
        payload.as_ref(),
        MAX_WAIT,
    )
    .await;
    dag.refresh();
    match answer {
        Ok(a) if a.status.is_success() => {
            if change == Change::MoveActive {
                wait_for_active(dag, &database, &server).await;
            }
            tracing::info!(%database, %server, ?change, "DAG change done");
            reply::json_status(StatusCode::OK, &a.body)
        }
        Ok(a) => {
            let why = a.body["error"].as_str().unwrap_or("refused").to_owned();
            tracing::warn!(%database, %server, ?change, status = a.status.as_u16(), "DAG change refused: {why}");
            reply::error(a.status, why)
        }
        Err(e) => reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn unknown_member(name: &str) -> Reply {
    reply::error(StatusCode::NOT_FOUND, format!("no member named \"{name}\""))
}

/// Waits (at most [`MAP_WAIT`]) until the array's map shows `server` holding
/// `database`'s mounted copy.
async fn wait_for_active(dag: &Dag, database: &str, server: &str) {
    let shown = || {
        dag.map()
            .database(database)
            .and_then(|d| d.mounted.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case(server))
    };
    let _ = tokio::time::timeout(MAP_WAIT, async {
        while !shown() {
            dag.refresh();
            tokio::select! {
                () = dag.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
    .await;
}

async fn read_json<B, T>(body: B) -> Result<T, Reply>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
    T: for<'de> Deserialize<'de>,
{
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            reply::error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        reply::error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"server\": \"<member>\"}}: {e}"),
        )
    })
}

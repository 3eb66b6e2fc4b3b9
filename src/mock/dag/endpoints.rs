//! `/mock/dag/*`: the DAG endpoints of a member (paths and names are
//! case-insensitive; bodies and answers are JSON; errors are
//! `{"error": "<reason>"}`).
//!
//! For the array's admin API and the `casarray database ...` commands:
//!
//! - `GET /mock/dag/status`: this server's view (see `status`); `ETag` is
//!   the view's version, `If-None-Match` with it answers `304`.
//! - `POST /mock/dag/databases/{db}/move-active` `{"server": "EX2",
//!   "force": false, "timeout_ms": 30000}`: a lossless switchover; `200`
//!   `{"database", "from", "active", "epoch", "generation", "lost_logs",
//!   "took_ms"}` once the target copy is mounted, or `404`/`409`/`503`/
//!   `504` with the reason. `force` activates a copy whose source is lost
//!   (with what it has). `timeout_ms` bounds the target's catching up
//!   (default 30 s, at most 10 minutes).
//! - `POST /mock/dag/databases/{db}/copies` `{"server": "EX3",
//!   "activation_preference": 3, "wait": true}`: adds a copy, seeded from
//!   the active copy; with `wait` (default) answers once it is `Healthy`
//!   with empty queues (at most 60 s): `200` `{"database", "server",
//!   "activation_preference", "status", "copy_queue", "replay_queue"}`.
//! - `DELETE /mock/dag/databases/{db}/copies/{server}`: removes a passive
//!   copy: `200` `{"database", "server", "removed": true}`.
//! - `POST /mock/dag/databases/{db}/copies/{server}/suspend` and
//!   `.../resume`: `200` `{"database", "server", "suspended": bool}`.
//!
//! Between servers:
//!
//! - `GET /mock/dag/ping?from=EX1`: a heartbeat; answers this server's
//!   report of its copies.
//! - `GET /mock/dag/logs/{db}?from=N&epoch=E&wait_ms=W`: generations N and
//!   up (at most 64 per answer, 4 MiB), waiting up to W ms (at most 5 s)
//!   for one when there is none: `200` `{"last_generation", "records"}`;
//!   `409` `{"diverged_from", "last_generation"}` when the caller's
//!   generation N-1 was written in another epoch than E here (or does not
//!   exist here); `410` when generations before N are no longer here;
//!   `421` when this server does not hold the active copy.
//! - `GET /mock/dag/seed/{db}`: a snapshot of the active copy's store
//!   (`application/octet-stream`, `X-Mock-Generation`, `X-Mock-Epoch`).
//! - `POST /mock/dag/deliver/{db}`: see `databases::deliver`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::api::{err, json, ApiError};
use super::replication::{Diverged, LogsAnswer};
use super::{mutations, now_ms, status, switchover, Dag};
use crate::mock::databases::deliver;
use crate::mock::http::request::{query_param, read_body};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// Largest mutation body read: 64 KiB.
const MAX_REQUEST: usize = 64 * 1024;
/// Most generations in one logs answer: 64.
const MAX_RECORDS: u64 = 64;
/// Most bytes of generations in one logs answer: 4 MiB.
const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;
/// Longest logs long poll: 5 s.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// Default time a switchover target may take to catch up: 30 s.
const DEFAULT_CATCH_UP: Duration = Duration::from_secs(30);
/// Longest catch-up accepted: 10 minutes.
const MAX_CATCH_UP: Duration = Duration::from_secs(600);

/// Answers `/mock/dag/...`; `path` is lower case.
pub async fn handle(shared: &Arc<Shared>, path: &str, req: Request<Incoming>) -> Response<Body> {
    let Some(dag) = shared.databases.dag() else {
        return err(404, format!("{} is not a member of a DAG", shared.name)).response();
    };
    let rest = path.trim_start_matches("/mock/dag").trim_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    let method = req.method().clone();
    match (method, parts.as_slice()) {
        (Method::GET, ["status"]) => status_answer(dag, &req),
        (Method::GET, ["ping"]) => {
            if let Some(from) = query_param(req.uri(), "from") {
                if dag.def().member(&from).is_some() {
                    dag.peers.heard(&from, now_ms());
                }
            }
            json(
                StatusCode::OK,
                &serde_json::to_value(dag.view()).unwrap_or_default(),
            )
        }
        (Method::GET, ["logs", db]) => logs(dag, db, &req).await,
        (Method::GET, ["seed", db]) => seed(dag, db).await,
        (_, ["deliver", db]) => deliver::handle(shared, db, req).await,
        (Method::POST, ["databases", db, "move-active"]) => move_active(dag, db, req).await,
        (Method::POST, ["databases", db, "copies"]) => add_copy(dag, db, req).await,
        (Method::DELETE, ["databases", db, "copies", server]) => {
            answer(mutations::remove_copy(dag, db, server).await)
        }
        (Method::POST, ["databases", db, "copies", server, action @ ("suspend" | "resume")]) => {
            answer(mutations::set_suspended(dag, db, server, *action == "suspend").await)
        }
        _ => err(404, format!("no DAG endpoint {path}")).response(),
    }
}

fn answer(result: Result<serde_json::Value, ApiError>) -> Response<Body> {
    match result {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.response(),
    }
}

fn status_answer(dag: &Dag, req: &Request<Incoming>) -> Response<Body> {
    let view = status::view(dag);
    let etag = format!("\"{}\"", view["version"].as_u64().unwrap_or(0));
    let unchanged = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if unchanged {
        response::with_body(StatusCode::NOT_MODIFIED, response::JSON, "")
    } else {
        json(StatusCode::OK, &view)
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    resp
}

async fn read_json(req: Request<Incoming>) -> Result<serde_json::Value, Response<Body>> {
    let body = read_body(req.into_body(), MAX_REQUEST).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body)
        .map_err(|e| err(400, format!("the body is not JSON: {e}")).response())
}

async fn move_active(dag: &Arc<Dag>, db: &str, req: Request<Incoming>) -> Response<Body> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(server) = body["server"].as_str() else {
        return err(400, "move-active needs {\"server\": \"<name>\"}").response();
    };
    let force = body["force"].as_bool().unwrap_or(false);
    let catch_up = body["timeout_ms"]
        .as_u64()
        .map_or(DEFAULT_CATCH_UP, Duration::from_millis)
        .min(MAX_CATCH_UP);
    match switchover::move_active(dag, db, server, force, catch_up).await {
        Ok(moved) => json(
            StatusCode::OK,
            &serde_json::to_value(moved).unwrap_or_default(),
        ),
        Err(e) => e.response(),
    }
}

async fn add_copy(dag: &Arc<Dag>, db: &str, req: Request<Incoming>) -> Response<Body> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(server) = body["server"].as_str() else {
        return err(400, "copy add needs {\"server\": \"<name>\"}").response();
    };
    let preference = body["activation_preference"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok());
    let wait = body["wait"].as_bool().unwrap_or(true);
    answer(mutations::add_copy(dag, db, server, preference, wait).await)
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The first generation, up to `upto`, that this copy wrote in another
/// epoch than `epoch` (where a caller at `epoch` diverged from it).
fn first_divergent(copy: &super::copy::LocalCopy, upto: u64, epoch: u64) -> std::io::Result<u64> {
    let mut g = upto;
    while g > 0 {
        match copy.epoch_of(g)? {
            Some(e) if e > epoch => g -= 1,
            _ => break,
        }
    }
    Ok((g + 1).min(upto.max(1)))
}

async fn logs(dag: &Arc<Dag>, db: &str, req: &Request<Incoming>) -> Response<Body> {
    let Some(copy) = dag.copy(db) else {
        return err(404, format!("{} has no copy of {db}", dag.me())).response();
    };
    let cluster = dag.cluster();
    let Some(st) = cluster.db(db) else {
        return err(503, "no cluster state yet").response();
    };
    if !st.active.eq_ignore_ascii_case(dag.me()) {
        return err(421, format!("{} holds the active copy of {db}", st.active)).response();
    }
    let param = |name| query_param(req.uri(), name).and_then(|v| v.parse::<u64>().ok());
    let from = param("from").unwrap_or(1).max(1);
    let epoch = param("epoch").unwrap_or(0);
    let wait = Duration::from_millis(param("wait_ms").unwrap_or(0)).min(MAX_WAIT);
    let prev = from - 1;
    let c = Arc::clone(&copy);
    let check = blocking(
        move || -> std::io::Result<Option<(u16, serde_json::Value)>> {
            let last = c.runtime().copied;
            if prev == 0 {
                return Ok(None);
            }
            let upto = prev.min(last);
            let Some(ours) = c.epoch_of(upto)? else {
                let base = c.runtime().base.generation;
                return Ok(Some((410, json!({"error": "gone", "base": base}))));
            };
            let diverged_from = if ours == epoch {
                if prev <= last {
                    return Ok(None);
                }
                // Same history up to our last generation; the rest is extra.
                last + 1
            } else if ours > epoch {
                first_divergent(&c, upto, epoch)?
            } else {
                // The caller has generations of a newer epoch than ours: it
                // cannot keep anything it cannot prove; it reseeds.
                1
            };
            let d = Diverged {
                diverged_from,
                last_generation: last,
            };
            Ok(Some((409, serde_json::to_value(d).unwrap_or_default())))
        },
    )
    .await;
    match check {
        Some(Ok(Some((status, body)))) => {
            return json(
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                &body,
            )
        }
        Some(Ok(None)) => {}
        Some(Err(e)) => return err(500, format!("reading the logs of {db}: {e}")).response(),
        None => return err(500, "the log reader failed").response(),
    }
    if copy.runtime().copied < from {
        copy.wait_beyond(from - 1, wait).await;
    }
    let c = Arc::clone(&copy);
    let read = blocking(move || -> std::io::Result<LogsAnswer> {
        let last = c.runtime().copied;
        let mut records = Vec::new();
        let mut bytes = 0;
        let mut g = from;
        while g <= last && g < from.saturating_add(MAX_RECORDS) && bytes < MAX_RECORD_BYTES {
            let Some(r) = c.logs.read(g)? else { break };
            bytes += std::fs::metadata(c.logs.path(g))
                .map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
            records.push(r);
            g += 1;
        }
        Ok(LogsAnswer {
            last_generation: last,
            records,
        })
    })
    .await;
    match read {
        Some(Ok(answer)) => json(
            StatusCode::OK,
            &serde_json::to_value(answer).unwrap_or_default(),
        ),
        Some(Err(e)) => err(500, format!("reading the logs of {db}: {e}")).response(),
        None => err(500, "the log reader failed").response(),
    }
}

async fn seed(dag: &Arc<Dag>, db: &str) -> Response<Body> {
    let Some(copy) = dag.copy(db) else {
        return err(404, format!("{} has no copy of {db}", dag.me())).response();
    };
    let active = dag
        .cluster()
        .db(db)
        .is_some_and(|s| s.active.eq_ignore_ascii_case(dag.me()));
    if !active || copy.mounted().is_none() {
        return err(503, format!("{db} is not mounted on {}", dag.me())).response();
    }
    let c = Arc::clone(&copy);
    let snapshot = blocking(move || -> Result<_, String> {
        let tmp = c.temp_file("snapshot");
        let position = c.store.snapshot_into(&tmp).map_err(|e| e.to_string());
        let bytes = position.and_then(|p| {
            std::fs::read(&tmp)
                .map(|b| (p, b))
                .map_err(|e| e.to_string())
        });
        let _ = std::fs::remove_file(&tmp);
        bytes
    })
    .await;
    match snapshot {
        Some(Ok((position, bytes))) => {
            let mut resp = response::with_body(StatusCode::OK, "application/octet-stream", bytes);
            resp.headers_mut()
                .insert("x-mock-generation", HeaderValue::from(position.generation));
            resp.headers_mut()
                .insert("x-mock-epoch", HeaderValue::from(position.epoch));
            tracing::info!(server = %dag.me(), database = %copy.database, generation = position.generation,
                "serving a seed of {}", copy.database);
            resp
        }
        Some(Err(e)) => err(500, format!("cannot snapshot {db}: {e}")).response(),
        None => err(500, "the snapshot task failed").response(),
    }
}

//! Log shipping, passive side: a task per passive copy that copies new
//! generations from the server with the active copy
//! (`GET /mock/dag/logs/{db}?from=N&epoch=E&wait_ms=W`, a long poll) and
//! replays them. The copy queue is what the active copy has and this one
//! has not copied; the replay queue, what it copied and has not replayed.
//!
//! - A new copy is first seeded: `GET /mock/dag/seed/{db}` is a snapshot
//!   of the active copy's store, installed in place of this one.
//! - The request says where this copy stands (its last generation and that
//!   generation's epoch). If the active copy's history differs there (this
//!   server was the active one and wrote generations that were never
//!   shipped before another took over), the answer is `409` with the
//!   first generation that differs: those generations are discarded (and
//!   logged); if they had been replayed already, the copy is reseeded.
//! - While the copy is suspended (cluster state), nothing is copied.

use std::sync::Arc;
use std::time::Duration;

use super::client::request;
use super::copy::{LocalCopy, Phase, Task};
use super::definition::Member;
use super::logs::LogRecord;
use super::Dag;

/// How long a poll waits for a new generation at the active server: 1 s.
const LONG_POLL: Duration = Duration::from_secs(1);
/// Bound on one logs exchange: 10 s.
const LOGS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest logs answer read: 64 MiB.
const MAX_LOGS: usize = 64 * 1024 * 1024;
/// Bound on a seeding download: 120 s.
const SEED_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest seed read: 1 GiB.
const MAX_SEED: usize = 1024 * 1024 * 1024;

/// `200` of the logs endpoint.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LogsAnswer {
    pub last_generation: u64,
    pub records: Vec<LogRecord>,
}

/// `409` of the logs endpoint.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Diverged {
    pub diverged_from: u64,
    pub last_generation: u64,
}

/// Starts the replication task of `copy` unless it runs.
pub fn ensure(dag: &Arc<Dag>, copy: &Arc<LocalCopy>) {
    let mut task = copy.task.lock().unwrap_or_else(|p| p.into_inner());
    if task.as_ref().is_some_and(|t| !t.handle.is_finished()) {
        return;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(run(Arc::clone(dag), Arc::clone(copy), stopped));
    *task = Some(Task { stop, handle });
}

/// Stops the replication task of `copy` and waits for it (at most 10 s;
/// then it is aborted).
pub async fn stop(copy: &Arc<LocalCopy>) {
    let task = copy.task.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut t) = task {
        let _ = t.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), &mut t.handle)
            .await
            .is_err()
        {
            t.handle.abort();
        }
    }
}

enum Next {
    /// Go on at once.
    Again,
    /// Wait a heartbeat interval.
    Pause,
}

async fn run(dag: Arc<Dag>, copy: Arc<LocalCopy>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let next = tokio::select! {
            next = step(&dag, &copy) => next,
            _ = stopped.changed() => return,
        };
        let next = match next {
            Ok(n) => n,
            Err(e) => {
                if copy.runtime().phase != Phase::Failed(e.clone()) {
                    tracing::warn!(server = %dag.me(), database = %copy.database, error = %e,
                        "copying {} failed", copy.database);
                }
                copy.update(|rt| rt.phase = Phase::Failed(e));
                Next::Pause
            }
        };
        if let Next::Pause = next {
            tokio::select! {
                () = tokio::time::sleep(dag.interval()) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}

async fn step(dag: &Arc<Dag>, copy: &Arc<LocalCopy>) -> Result<Next, String> {
    let cluster = dag.cluster();
    let Some(st) = cluster.db(&copy.database) else {
        return Ok(Next::Pause);
    };
    if st.active.eq_ignore_ascii_case(dag.me()) || st.is_suspended(dag.me()) {
        return Ok(Next::Pause);
    }
    let Some(source) = dag.member(&st.active) else {
        return Err(format!("the active server {} is no member", st.active));
    };
    if copy.runtime().needs_seed {
        return seed(dag, copy, &source).await;
    }
    let rt = copy.runtime();
    let path = format!(
        "/mock/dag/logs/{}?from={}&epoch={}&wait_ms={}",
        copy.database,
        rt.copied + 1,
        rt.copied_epoch,
        LONG_POLL.as_millis()
    );
    let reply = match dag
        .client()
        .call(
            &source,
            request(http::Method::GET, &path, ""),
            LOGS_TIMEOUT,
            MAX_LOGS,
        )
        .await
    {
        Ok(r) => r,
        // The active server is unreachable: Active Manager deals with it.
        Err(_) => return Ok(Next::Pause),
    };
    match reply.status.as_u16() {
        200 => {
            let answer: LogsAnswer = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("unreadable logs from {}: {e}", source.name))?;
            let c = Arc::clone(copy);
            let stored = blocking(move || -> Result<u64, String> {
                let n = c.store_copied(&answer.records).map_err(|e| e.to_string())?;
                c.update(|rt| rt.source_last = rt.source_last.max(answer.last_generation));
                c.replay_pending().map_err(|e| e.to_string())?;
                Ok(n)
            })
            .await??;
            copy.update(|rt| rt.phase = Phase::Copying);
            let _ = stored;
            Ok(Next::Again)
        }
        409 => {
            let d: Diverged = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("unreadable divergence from {}: {e}", source.name))?;
            diverged(dag, copy, &source, &d).await
        }
        410 => {
            tracing::info!(server = %dag.me(), database = %copy.database,
                "{} no longer has the generations {} needs: reseeding", source.name, copy.database);
            copy.update(|rt| rt.needs_seed = true);
            Ok(Next::Again)
        }
        // Not (or no longer) the active copy, or not ready: ask again later.
        421 | 503 => Ok(Next::Pause),
        other => Err(format!(
            "{} answered {other} to a logs request: {}",
            source.name,
            String::from_utf8_lossy(&reply.body)
        )),
    }
}

async fn diverged(
    dag: &Arc<Dag>,
    copy: &Arc<LocalCopy>,
    source: &Member,
    d: &Diverged,
) -> Result<Next, String> {
    let rt = copy.runtime();
    let first = d.diverged_from.max(1);
    let count = rt.copied.saturating_sub(first - 1);
    tracing::warn!(
        server = %dag.me(), database = %copy.database, active = %source.name,
        first, last = rt.copied, discarded = count,
        "{} on {} diverged from the active copy on {}: discarding {count} generation(s) {first}..={} that were never shipped{}",
        copy.database, dag.me(), source.name, rt.copied,
        if rt.replayed >= first { "; they were replayed, so the copy is reseeded" } else { "" }
    );
    // What this copy knew of "the active copy" included its own lost
    // generations: the active copy's last is the truth now.
    copy.update(|rt| rt.source_last = d.last_generation);
    if rt.replayed >= first {
        copy.update(|rt| rt.needs_seed = true);
        return Ok(Next::Again);
    }
    let c = Arc::clone(copy);
    blocking(move || c.discard_from(first).map_err(|e| e.to_string())).await??;
    Ok(Next::Again)
}

async fn seed(dag: &Arc<Dag>, copy: &Arc<LocalCopy>, source: &Member) -> Result<Next, String> {
    copy.update(|rt| rt.phase = Phase::Initializing);
    let path = format!("/mock/dag/seed/{}", copy.database);
    let reply = match dag
        .client()
        .call(
            source,
            request(http::Method::GET, &path, ""),
            SEED_TIMEOUT,
            MAX_SEED,
        )
        .await
    {
        Ok(r) => r,
        Err(_) => return Ok(Next::Pause),
    };
    if !reply.status.is_success() {
        // The active copy is not ready to seed (not mounted yet): later.
        return Ok(Next::Pause);
    }
    let c = Arc::clone(copy);
    let position = blocking(move || -> Result<_, String> {
        use std::io::Write as _;
        let tmp = c.temp_file("seed");
        let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        f.write_all(&reply.body)
            .and_then(|()| f.sync_all())
            .map_err(|e| e.to_string())?;
        drop(f);
        let result = c.install_seed(&tmp).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&tmp);
        result
    })
    .await??;
    copy.update(|rt| rt.phase = Phase::Copying);
    tracing::info!(server = %dag.me(), database = %copy.database, generation = position.generation,
        "{} on {} seeded from {} at generation {}", copy.database, dag.me(), source.name, position.generation);
    Ok(Next::Again)
}

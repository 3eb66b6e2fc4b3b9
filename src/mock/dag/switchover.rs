//! `move-active` (Exchange's `Move-ActiveMailboxDatabase`), coordinated by
//! whichever server got the request:
//!
//! 1. Checks: the target holds a copy and is reachable; a suspended target
//!    copy is resumed (logged).
//! 2. Under the DAG lock the state gets `moving_to = target`: the active
//!    copy stops taking writes (its server dismounts it at its next tick)
//!    and keeps serving its logs.
//! 3. Once the source reports its copy dismounted at generation G, and the
//!    target has copied and replayed G, the state names the target active
//!    at the next epoch (a lossless switchover), and the call returns once
//!    the target reports the copy mounted.
//!
//! Any failure before step 3 clears `moving_to` (the source mounts again)
//! and answers with the reason. With the source lost, a switchover cannot
//! be lossless: it is refused, unless `force` asks to activate the target
//! with what it has (the loss is recorded and logged).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::{err, ApiError};
use super::report::CopyStatus;
use super::state::{Activation, ActivationKind};
use super::{now_ms, Dag};

/// How long the source may take to stop writing: 15 s.
const DISMOUNT_WAIT: Duration = Duration::from_secs(15);
/// How long the target may take to mount once named: 15 s.
const MOUNT_WAIT: Duration = Duration::from_secs(15);
/// How often progress is checked: 50 ms.
const POLL: Duration = Duration::from_millis(50);

/// What a switchover did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moved {
    pub database: String,
    pub from: String,
    pub active: String,
    pub epoch: u64,
    pub generation: u64,
    pub lost_logs: u64,
    pub took_ms: u64,
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<R> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(500, e.to_string()))?
        .map_err(|e| err(503, format!("cannot update the cluster state: {e}")))
}

/// Moves the active copy of `database` to `target`; waits at most
/// `catch_up` for the target to catch up.
pub async fn move_active(
    dag: &Arc<Dag>,
    database: &str,
    target: &str,
    force: bool,
    catch_up: Duration,
) -> Result<Moved, ApiError> {
    let started = Instant::now();
    let def = dag.def();
    let db = def
        .database(database)
        .ok_or_else(|| err(404, format!("no database {database} in the DAG")))?;
    let database = db.name.clone();
    let copy = db
        .copy_on(target)
        .ok_or_else(|| err(409, format!("{database} has no copy on {target}")))?;
    let target = copy.server.clone();
    if !dag.has_quorum() {
        return Err(err(503, format!("{} has no quorum", dag.me())));
    }
    if dag.report_of(&target, &database).is_none() {
        return Err(err(409, format!("{target} is unreachable (ServiceDown)")));
    }
    let st = dag
        .cluster()
        .db(&database)
        .cloned()
        .ok_or_else(|| err(503, format!("no state for {database} yet")))?;
    if st.active.eq_ignore_ascii_case(&target) && st.moving_to.is_none() {
        mounted_on(dag, &target, &database, st.epoch, MOUNT_WAIT).await?;
        return Ok(Moved {
            database,
            from: target.clone(),
            active: target,
            epoch: st.epoch,
            generation: dag
                .report_of(&st.active, db.name.as_str())
                .map_or(0, |r| r.replayed),
            lost_logs: 0,
            took_ms: elapsed_ms(started),
        });
    }
    if st.moving_to.is_some() {
        return Err(err(409, format!("{database} is already being moved")));
    }
    if st.is_suspended(&target) {
        let (d, name, t) = (Arc::clone(dag), database.clone(), target.clone());
        blocking(move || {
            d.update_state(|s| {
                if let Some(x) = s.db_mut(&name) {
                    x.suspended.retain(|v| !v.eq_ignore_ascii_case(&t));
                }
            })
        })
        .await?;
        tracing::info!(server = %dag.me(), database = %database, copy = %target,
            "move-active: resumed the suspended copy of {database} on {target} so that it catches up");
    }
    let source = st.active.clone();
    if dag.report_of(&source, &database).is_none() {
        return forced(dag, &database, &source, &target, st.epoch, force, started).await;
    }

    // 2. Stop writes on the source.
    let (d, name, t, epoch) = (Arc::clone(dag), database.clone(), target.clone(), st.epoch);
    let (set, _) = blocking(move || {
        d.update_state(|s| match s.db_mut(&name) {
            Some(x) if x.epoch == epoch && x.moving_to.is_none() => {
                x.moving_to = Some(t.clone());
                true
            }
            _ => false,
        })
    })
    .await?;
    if !set {
        return Err(err(
            409,
            format!("{database} changed while moving it; try again"),
        ));
    }
    dag.kick();
    tracing::info!(server = %dag.me(), database = %database, from = %source, to = %target,
        "move-active: {database} from {source} to {target}: waiting for {target} to catch up");
    let result = catch_up_and_switch(dag, &database, &source, &target, epoch, catch_up).await;
    match result {
        Ok((generation, new_epoch)) => {
            dag.kick();
            mounted_on(dag, &target, &database, new_epoch, MOUNT_WAIT).await?;
            let moved = Moved {
                database: database.clone(),
                from: source,
                active: target,
                epoch: new_epoch,
                generation,
                lost_logs: 0,
                took_ms: elapsed_ms(started),
            };
            tracing::info!(server = %dag.me(), database = %database, to = %moved.active,
                generation, took_ms = moved.took_ms,
                "move-active: {database} is mounted on {} (lossless, generation {generation})", moved.active);
            Ok(moved)
        }
        Err(e) => {
            let (d, name) = (Arc::clone(dag), database.clone());
            let _ = blocking(move || {
                d.update_state(|s| {
                    if let Some(x) = s.db_mut(&name) {
                        if x.epoch == epoch {
                            x.moving_to = None;
                        }
                    }
                })
            })
            .await;
            dag.kick();
            tracing::warn!(server = %dag.me(), database = %database, error = %e,
                "move-active of {database} to {target} failed; {source} keeps the active copy");
            Err(e)
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn catch_up_and_switch(
    dag: &Arc<Dag>,
    database: &str,
    source: &str,
    target: &str,
    epoch: u64,
    catch_up: Duration,
) -> Result<(u64, u64), ApiError> {
    // The source's last generation, once it stopped writing.
    let deadline = Instant::now() + DISMOUNT_WAIT;
    let last = loop {
        match dag.report_of(source, database) {
            Some(r) if r.status == CopyStatus::Dismounted && r.mounted_epoch.is_none() => {
                break r.copied;
            }
            Some(_) => {}
            None => return Err(err(503, format!("{source} became unreachable"))),
        }
        if Instant::now() > deadline {
            return Err(err(
                504,
                format!("{source} did not stop writing {database} in time"),
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let deadline = Instant::now() + catch_up;
    loop {
        match dag.report_of(target, database) {
            Some(r) if r.copied >= last && r.replayed >= last => break,
            Some(r) if r.status == CopyStatus::Failed => {
                return Err(err(
                    409,
                    format!(
                        "the copy on {target} failed: {}",
                        r.error.unwrap_or_default()
                    ),
                ))
            }
            Some(_) => {}
            None => return Err(err(503, format!("{target} became unreachable"))),
        }
        if Instant::now() > deadline {
            let behind = dag
                .report_of(target, database)
                .map_or(0, |r| last.saturating_sub(r.replayed));
            return Err(err(
                504,
                format!("{target} did not catch up with {database} in time ({behind} generation(s) behind)"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let (d, name, s, t) = (
        Arc::clone(dag),
        database.to_string(),
        source.to_string(),
        target.to_string(),
    );
    let (new_epoch, _) = blocking(move || {
        d.update_state(|state| match state.db_mut(&name) {
            Some(x) if x.epoch == epoch && x.moving_to.as_deref() == Some(t.as_str()) => {
                x.active = t.clone();
                x.epoch += 1;
                x.moving_to = None;
                x.last_activation = Some(Activation {
                    kind: ActivationKind::Switchover,
                    from: Some(s.clone()),
                    to: t.clone(),
                    lost_logs: 0,
                    generation: last,
                    decided_by: d.me().to_string(),
                    at_unix_ms: now_ms(),
                });
                Some(x.epoch)
            }
            _ => None,
        })
    })
    .await?;
    let new_epoch =
        new_epoch.ok_or_else(|| err(409, format!("{database} changed while moving it")))?;
    Ok((last, new_epoch))
}

/// The source is lost: only `force` activates the target with what it has.
async fn forced(
    dag: &Arc<Dag>,
    database: &str,
    source: &str,
    target: &str,
    epoch: u64,
    force: bool,
    started: Instant,
) -> Result<Moved, ApiError> {
    let report = dag
        .report_of(target, database)
        .ok_or_else(|| err(409, format!("{target} is unreachable")))?;
    let last_known = dag
        .peers
        .view(source)
        .and_then(|v| {
            v.copies
                .iter()
                .find(|(db, _)| db.eq_ignore_ascii_case(database))
                .map(|(_, r)| r.source_last.max(r.copied))
        })
        .unwrap_or(0)
        .max(report.source_last)
        .max(
            dag.cluster()
                .db(database)
                .and_then(|d| d.last_log.as_ref())
                .filter(|l| l.server.eq_ignore_ascii_case(source))
                .map_or(0, |l| l.generation),
        );
    let lost = last_known.saturating_sub(report.copied);
    if !force {
        return Err(err(
            409,
            format!(
                "{database}'s active server {source} is unreachable, so {target} cannot catch up first \
                 ({lost} generation(s) behind); pass \"force\": true to activate it with what it has"
            ),
        ));
    }
    let (d, name, s, t) = (
        Arc::clone(dag),
        database.to_string(),
        source.to_string(),
        target.to_string(),
    );
    let generation = report.copied;
    let (new_epoch, _) = blocking(move || {
        d.update_state(|state| match state.db_mut(&name) {
            Some(x) if x.epoch == epoch => {
                x.active = t.clone();
                x.epoch += 1;
                x.moving_to = None;
                x.last_activation = Some(Activation {
                    kind: ActivationKind::Forced,
                    from: Some(s.clone()),
                    to: t.clone(),
                    lost_logs: lost,
                    generation,
                    decided_by: d.me().to_string(),
                    at_unix_ms: now_ms(),
                });
                Some(x.epoch)
            }
            _ => None,
        })
    })
    .await?;
    let new_epoch =
        new_epoch.ok_or_else(|| err(409, format!("{database} changed while moving it")))?;
    tracing::warn!(server = %dag.me(), database = %database, from = %source, to = %target, lost_logs = lost,
        "move-active (forced): {database} activated on {target} without its lost server {source}; {lost} log(s) lost");
    dag.kick();
    mounted_on(dag, target, database, new_epoch, MOUNT_WAIT).await?;
    Ok(Moved {
        database: database.to_string(),
        from: source.to_string(),
        active: target.to_string(),
        epoch: new_epoch,
        generation,
        lost_logs: lost,
        took_ms: elapsed_ms(started),
    })
}

/// Waits until `server` reports its copy of `database` mounted at `epoch`.
async fn mounted_on(
    dag: &Arc<Dag>,
    server: &str,
    database: &str,
    epoch: u64,
    wait: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        if dag
            .report_of(server, database)
            .is_some_and(|r| r.status == CopyStatus::Mounted && r.mounted_epoch == Some(epoch))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(err(
                504,
                format!("{database} was not mounted on {server} in time"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

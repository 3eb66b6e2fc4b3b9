//! Active Manager: one tick every heartbeat interval (or when kicked).
//!
//! 1. Re-read `dag.toml` (open copies added for this server, stop the
//!    removed ones) and the cluster state.
//! 2. Witness: when this server's majority without the witness would run
//!    out within three heartbeats, take (or renew) the witness lease.
//! 3. Without quorum: dismount every mounted copy (a server that wakes up
//!    from SIGSTOP lands here) and stop.
//! 4. For each database whose active server is lost (not heard from for
//!    `failure_timeout`): choose the best copy (`election`), and if its
//!    loss is within the mount dial, record the activation by
//!    compare-and-swap, only if the state still names the lost server at
//!    the same epoch (so exactly one server decides, once per epoch);
//!    otherwise log why nothing is mounted.
//! 5. Make this server's copies match the state: mount the copies it is
//!    the active server for (replaying what was copied; checking the
//!    latest state again), dismount the others, run replication for the
//!    passive ones.
//! 6. Publish the last generation of each mounted copy in the state (at
//!    most once a second).

use std::sync::Arc;

use super::copy::LocalCopy;
use super::election::{self, Candidate};
use super::report::CopyStatus;
use super::state::{Activation, ActivationKind, DbState, LastLog};
use super::witness::{self, Outcome};
use super::{now_ms, quorum, replication, state, Dag};
use crate::mock::store::{self, StoreError};

/// Runs the ticks until the runtime ends.
pub async fn run(dag: Arc<Dag>) {
    let mut last = now_ms();
    loop {
        let interval = dag.interval();
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = dag.kick.notified() => {}
        }
        let now = now_ms();
        let stalled = now.saturating_sub(last);
        if stalled > u64::try_from(dag.def().failure_timeout.as_millis()).unwrap_or(u64::MAX) {
            tracing::warn!(server = %dag.me(), stalled_ms = stalled,
                "Active Manager did not run for {:.1} s (stopped or starved)", stalled as f64 / 1000.0);
        }
        last = now;
        if let Err(e) = tick(&dag).await {
            tracing::warn!(server = %dag.me(), error = %e, "Active Manager tick failed");
        }
    }
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

async fn tick(dag: &Arc<Dag>) -> anyhow::Result<()> {
    let d = Arc::clone(dag);
    if blocking(move || d.refresh_definition()).await? {
        sync_copies(dag).await?;
    }
    let d = Arc::clone(dag);
    blocking(move || d.refresh_state()).await??;
    witness_step(dag).await?;
    let has = dag.has_quorum();
    let had = dag
        .had_quorum
        .swap(has, std::sync::atomic::Ordering::Relaxed);
    if !has {
        lost_quorum(dag, had);
        return Ok(());
    }
    if !had {
        tracing::info!(server = %dag.me(), "{} has quorum", dag.me());
    }
    failovers(dag).await?;
    reconcile(dag).await;
    publish_last_logs(dag).await?;
    Ok(())
}

/// How often the last generations are published at most: once a second.
const PUBLISH_EVERY_MS: u64 = 1000;

/// Records, for each database this server has mounted, its last
/// generation in the cluster state when it moved (at most once a second).
async fn publish_last_logs(dag: &Arc<Dag>) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    if now_ms().saturating_sub(dag.published_ms.load(Ordering::Relaxed)) < PUBLISH_EVERY_MS {
        return Ok(());
    }
    let cluster = dag.cluster();
    let mut changed = Vec::new();
    for copy in dag.copies() {
        let Some(m) = copy.mounted() else { continue };
        let Some(st) = cluster.db(&copy.database) else {
            continue;
        };
        let generation = copy.runtime().replayed;
        let published = st.last_log.as_ref().is_some_and(|l| {
            l.server.eq_ignore_ascii_case(dag.me())
                && l.epoch == m.epoch
                && l.generation >= generation
        });
        if st.active.eq_ignore_ascii_case(dag.me()) && st.epoch == m.epoch && !published {
            changed.push((copy.database.clone(), m.epoch, generation));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    dag.published_ms.store(now_ms(), Ordering::Relaxed);
    let d = Arc::clone(dag);
    blocking(move || {
        d.update_state(|s| {
            for (db, epoch, generation) in &changed {
                if let Some(x) = s.db_mut(db) {
                    if x.active.eq_ignore_ascii_case(d.me()) && x.epoch == *epoch {
                        x.last_log = Some(LastLog {
                            server: d.me().to_string(),
                            epoch: *epoch,
                            generation: *generation,
                            at_unix_ms: now_ms(),
                        });
                    }
                }
            }
        })
    })
    .await??;
    Ok(())
}

/// Opens copies the definition now gives this server; stops and forgets
/// the ones it took away.
async fn sync_copies(dag: &Arc<Dag>) -> anyhow::Result<()> {
    let def = dag.def();
    let wanted: Vec<String> = def
        .databases
        .iter()
        .filter(|d| d.copy_on(dag.me()).is_some())
        .map(|d| d.name.clone())
        .collect();
    for copy in dag.copies() {
        if !wanted
            .iter()
            .any(|w| w.eq_ignore_ascii_case(&copy.database))
        {
            replication::stop(&copy).await;
            copy.dismount();
            let mut copies = dag.copies.write().unwrap_or_else(|p| p.into_inner());
            copies.remove(&copy.database.to_ascii_uppercase());
            tracing::info!(server = %dag.me(), database = %copy.database,
                "the copy of {} on {} was removed from the DAG", copy.database, dag.me());
        }
    }
    for name in wanted {
        if dag.copy(&name).is_some() {
            continue;
        }
        let dir = dag.store_dir().to_path_buf();
        let db = name.clone();
        let copy = blocking(move || LocalCopy::open(&dir, &db)).await??;
        tracing::info!(server = %dag.me(), database = %name,
            "new copy of {name} on {}: it will be seeded from the active copy", dag.me());
        let mut copies = dag.copies.write().unwrap_or_else(|p| p.into_inner());
        copies.insert(name.to_ascii_uppercase(), Arc::new(copy));
    }
    Ok(())
}

async fn witness_step(dag: &Arc<Dag>) -> anyhow::Result<()> {
    let def = dag.def();
    let votes = quorum::votes(def.members.len());
    let now = now_ms();
    let held = dag.held_witness().filter(|l| l.valid_at(now));
    if !votes.witness_counts {
        *dag.witness.lock().unwrap_or_else(|p| p.into_inner()) = None;
        return Ok(());
    }
    let interval = u64::try_from(def.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
    let lease_ms = u64::try_from(def.witness_lease.as_millis()).unwrap_or(u64::MAX);
    let needed = dag.quorum_until(false) <= now.saturating_add(interval.saturating_mul(3));
    let fresh = held
        .as_ref()
        .is_some_and(|l| l.expires_unix_ms > now.saturating_add(lease_ms / 2));
    if !needed || fresh {
        if held.is_none() {
            *dag.witness.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        return Ok(());
    }
    let (path, me) = (def.witness.clone(), dag.me().to_string());
    let outcome = blocking(move || witness::acquire(&path, &me, now_ms(), lease_ms)).await?;
    let mut slot = dag.witness.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(Outcome::Held(lease)) => {
            if held.is_none() {
                tracing::info!(server = %dag.me(), expires_unix_ms = lease.expires_unix_ms,
                    "{} holds the witness lease", dag.me());
            }
            *slot = Some(lease);
        }
        Ok(Outcome::HeldBy(lease)) => {
            if held.is_some() {
                tracing::warn!(server = %dag.me(), holder = %lease.holder, "lost the witness lease");
            }
            *slot = None;
        }
        Err(e) => {
            tracing::warn!(server = %dag.me(), error = %e, "cannot take the witness lease");
        }
    }
    Ok(())
}

fn lost_quorum(dag: &Arc<Dag>, had: bool) {
    let def = dag.def();
    let votes = quorum::votes(def.members.len());
    let mut dismounted = Vec::new();
    for copy in dag.copies() {
        if copy.dismount().is_some() {
            dismounted.push(copy.database.clone());
        }
    }
    if had || !dismounted.is_empty() {
        tracing::warn!(server = %dag.me(), needed = votes.needed, total = votes.total,
            ?dismounted,
            "{} has no quorum (it needs {} of {} votes): its copies take no writes{}",
            dag.me(), votes.needed, votes.total,
            if dismounted.is_empty() { String::new() } else { format!("; dismounted {}", dismounted.join(", ")) });
    }
}

/// Fails over the databases whose active server is lost.
async fn failovers(dag: &Arc<Dag>) -> anyhow::Result<()> {
    let now = now_ms();
    let def = dag.def();
    let cluster = dag.cluster();
    for db in &def.databases {
        let Some(st) = cluster.db(&db.name) else {
            continue;
        };
        if st.active.eq_ignore_ascii_case(dag.me()) || !dag.peer_down(&st.active, now) {
            continue;
        }
        let (candidates, skipped, last_known) = candidates(dag, &db.name, st);
        let choice = election::choose(candidates, last_known, def.dial);
        let Some((chosen, lost)) = choice.chosen.clone() else {
            let mut why: Vec<String> = skipped;
            why.extend(choice.passed.iter().map(|(s, r)| format!("{s}: {r}")));
            let text = format!(
                "{} not mounted: its active server {} is lost (last generation known {last_known}) and no copy can be mounted within AutoDatabaseMountDial {} ({} logs): {}",
                db.name, st.active, def.dial.as_str(), def.dial.max_lost(),
                if why.is_empty() { "no other copy".to_string() } else { why.join("; ") }
            );
            if dag.note(&db.name, Some(text.clone())) {
                tracing::warn!(server = %dag.me(), database = %db.name, "{text}");
            }
            continue;
        };
        let d = Arc::clone(dag);
        let (name, before) = (db.name.clone(), st.clone());
        let target = chosen.server.clone();
        let decided = blocking(move || {
            d.update_state(|s| {
                let Some(cur) = s.db_mut(&name) else {
                    return false;
                };
                let unchanged = cur.active == before.active && cur.epoch == before.epoch;
                if !unchanged || !d.peer_down(&before.active, now_ms()) || !d.has_quorum() {
                    return false;
                }
                cur.active = target.clone();
                cur.epoch += 1;
                cur.moving_to = None;
                cur.failovers += 1;
                cur.last_activation = Some(Activation {
                    kind: ActivationKind::Failover,
                    from: Some(before.active.clone()),
                    to: target.clone(),
                    lost_logs: lost,
                    generation: chosen.copied,
                    decided_by: d.me().to_string(),
                    at_unix_ms: now_ms(),
                });
                true
            })
        })
        .await??;
        if decided.0 {
            dag.note(&db.name, None);
            tracing::warn!(
                server = %dag.me(), database = %db.name, from = %st.active, to = %chosen.server,
                lost_logs = lost, copied = chosen.copied, last_known, order = ?choice.order,
                "Active Manager: {} failed over from {} (lost) to {} (activation preference {}, copy queue {}); {} log(s) lost (AutoDatabaseMountDial {} allows {})",
                db.name, st.active, chosen.server, chosen.activation_preference,
                last_known.saturating_sub(chosen.copied), lost, def.dial.as_str(), def.dial.max_lost()
            );
            dag.kick();
        }
    }
    Ok(())
}

/// The copies of `database` that could take over from its lost active
/// server, why the others cannot, and the last generation known of the
/// lost active copy.
fn candidates(dag: &Dag, database: &str, st: &DbState) -> (Vec<Candidate>, Vec<String>, u64) {
    let def = dag.def();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut last_known = dag
        .peers
        .view(&st.active)
        .and_then(|v| {
            v.copies
                .iter()
                .find(|(db, _)| db.eq_ignore_ascii_case(database))
                .map(|(_, r)| r.source_last.max(r.copied))
        })
        .unwrap_or(0);
    if let Some(l) = &st.last_log {
        if l.server.eq_ignore_ascii_case(&st.active) {
            last_known = last_known.max(l.generation);
        }
    }
    let Some(db) = def.database(database) else {
        return (out, skipped, last_known);
    };
    for copy in db
        .copies
        .iter()
        .filter(|c| !c.server.eq_ignore_ascii_case(&st.active))
    {
        let Some(report) = dag.report_of(&copy.server, database) else {
            skipped.push(format!("{}: ServiceDown", copy.server));
            continue;
        };
        last_known = last_known.max(report.source_last).max(report.copied);
        if st.is_suspended(&copy.server) {
            skipped.push(format!(
                "{}: Suspended (copy queue {})",
                copy.server,
                report.copy_queue()
            ));
            continue;
        }
        if report.status != CopyStatus::Healthy {
            skipped.push(format!("{}: {:?}", copy.server, report.status));
            continue;
        }
        out.push(Candidate {
            server: copy.server.clone(),
            activation_preference: copy.activation_preference,
            copied: report.copied,
            replayed: report.replayed,
        });
    }
    (out, skipped, last_known)
}

/// Makes this server's copies match the cluster state.
async fn reconcile(dag: &Arc<Dag>) {
    let cluster = dag.cluster();
    for copy in dag.copies() {
        let Some(st) = cluster.db(&copy.database) else {
            continue;
        };
        let here = st.active.eq_ignore_ascii_case(dag.me());
        if here && st.moving_to.is_none() {
            if copy.mounted().is_some_and(|m| m.epoch == st.epoch) {
                continue;
            }
            copy.dismount();
            replication::stop(&copy).await;
            if let Err(e) = mount(dag, &copy, st.epoch).await {
                tracing::warn!(server = %dag.me(), database = %copy.database, error = %e,
                    "cannot mount {}", copy.database);
            }
        } else if here {
            replication::stop(&copy).await;
            if copy.dismount().is_some() {
                tracing::info!(server = %dag.me(), database = %copy.database,
                    generation = copy.runtime().replayed,
                    "{} dismounted on {} for the switchover to {}",
                    copy.database, dag.me(), st.moving_to.as_deref().unwrap_or("?"));
            }
        } else {
            if let Some(m) = copy.dismount() {
                tracing::warn!(server = %dag.me(), database = %copy.database,
                    "{} dismounted on {} (it was mounted at epoch {}): {} holds the active copy at epoch {}",
                    copy.database, dag.me(), m.epoch, st.active, st.epoch);
            }
            replication::ensure(dag, &copy);
        }
    }
}

/// Mounts `copy` at `epoch` when the state (re-read under the DAG lock)
/// still says so and this server has quorum; a database never written
/// gets its welcome messages as its first generation.
async fn mount(dag: &Arc<Dag>, copy: &Arc<LocalCopy>, epoch: u64) -> anyhow::Result<()> {
    let (d, c) = (Arc::clone(dag), Arc::clone(copy));
    let mounted = blocking(move || -> Result<Option<(u64, u64)>, StoreError> {
        c.replay_pending()?;
        // The latest state, read now: a decision taken since the last
        // tick is seen.
        let st = state::read(&d.def().state)?;
        let still = st.db(&c.database).is_some_and(|s| {
            s.active.eq_ignore_ascii_case(d.me()) && s.epoch == epoch && s.moving_to.is_none()
        });
        if !still || !d.has_quorum() {
            return Ok(None);
        }
        let mounted = c.mount(epoch)?;
        c.update(|rt| rt.needs_seed = false);
        Ok(Some(mounted))
    })
    .await??;
    let Some((replayed, generation)) = mounted else {
        return Ok(());
    };
    tracing::info!(server = %dag.me(), database = %copy.database, epoch, generation, replayed,
        "{} mounted on {} at epoch {epoch}, generation {generation} ({replayed} replayed now)",
        copy.database, dag.me());
    if generation == 0 {
        let database = copy.database.clone();
        dag.write(copy, move |b| {
            store::welcome(b, &database, crate::mock::format::clock::unix_now())
        })
        .await?;
    }
    Ok(())
}

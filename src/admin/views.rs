//! The typed answers of the read calls (`crate::api`), made from one
//! snapshot (what the forwarding path uses) and the members' live state.

use std::collections::BTreeMap;

use crate::api::{ArrayView, CheckView, DatabaseView, MemberState, MemberView};
use crate::dag::DagMap;
use crate::snapshot::Snapshot;

/// `GET /api/array`.
pub fn array(snap: &Snapshot) -> ArrayView {
    let a = &snap.cfg.array;
    ArrayView {
        name: a.name.clone(),
        fqdn: a.fqdn.clone(),
        site: a.site.clone(),
        public_names: a.public_names.clone(),
        public_port: a.public_port,
        members: snap.cfg.members.iter().map(|m| m.name.clone()).collect(),
        // The HTTP services in config order, then smtp when listened on.
        services: snap
            .upstreams
            .services()
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        cluster: None,
    }
}

/// `GET /api/members`: every member in config order.
pub fn members(snap: &Snapshot) -> Vec<MemberView> {
    (0..snap.upstreams.members().len())
        .filter_map(|m| member(snap, m))
        .collect()
}

/// One member; `services` names those it takes (`smtp` only with an smtp
/// address); `healthy` is true when every one of them is up on it;
/// `last_checks` has no entry for a service not probed yet.
pub fn member(snap: &Snapshot, m: usize) -> Option<MemberView> {
    let b = snap.upstreams.members().get(m)?;
    let mut services = BTreeMap::new();
    let mut last_checks = BTreeMap::new();
    let mut healthy = true;
    for (s, svc) in snap.upstreams.services().iter().enumerate() {
        if b.service(s).target.is_none() {
            continue;
        }
        let cell = b.cell(s);
        let up = cell.is_up();
        healthy &= up;
        services.insert(svc.name.clone(), up);
        if let Some((at_unix_ms, ok, detail)) = cell.last_check() {
            last_checks.insert(
                svc.name.clone(),
                CheckView {
                    at_unix_ms,
                    ok,
                    detail,
                },
            );
        }
    }
    Some(MemberView {
        name: b.name.clone(),
        address: b.address.to_string(),
        fqdn: b.fqdn.clone(),
        weight: snap.cfg.members.get(m).map(|c| c.weight),
        tls: b.tls.is_some(),
        state: if b.state.is_draining() {
            MemberState::Draining
        } else {
            MemberState::Active
        },
        healthy,
        in_flight: b.state.in_flight() as u64,
        services,
        last_checks,
    })
}

/// `GET /api/databases`: the config's databases (with their
/// RpcClientAccessServer) in file order, then the DAG's others; each with
/// its active copy and copies when the members run a DAG.
pub fn databases(snap: &Snapshot, dag: &DagMap) -> Vec<DatabaseView> {
    let mut out = crate::directory::list_databases(&snap.cfg);
    for db in dag.databases() {
        if !out.iter().any(|d| d.name.eq_ignore_ascii_case(&db.name)) {
            out.push(DatabaseView::configured(&db.name, None));
        }
    }
    for view in &mut out {
        if let Some(db) = dag.database(&view.name) {
            view.active = db.mounted.clone();
            view.copies = db.copies.clone();
            view.failovers = db.failovers;
        }
    }
    out
}

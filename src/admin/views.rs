//! The JSON the read calls answer, made from one snapshot (what the
//! forwarding path uses) and the members' live state.

use serde_json::{json, Map, Value};

use crate::proxy::snapshot::Snapshot;
use crate::upstream::Backend;

/// `GET /api/array`: `{"name","fqdn","site","public_names","public_port",
/// "members":[names],"services":[names in config order]}`.
pub fn array(snap: &Snapshot) -> Value {
    let a = &snap.cfg.array;
    let members: Vec<&str> = snap.cfg.members.iter().map(|m| m.name.as_str()).collect();
    let services: Vec<&str> = snap.cfg.services.iter().map(|s| s.name.as_str()).collect();
    json!({
        "name": a.name,
        "fqdn": a.fqdn,
        "site": a.site,
        "public_names": a.public_names,
        "public_port": a.public_port,
        "members": members,
        "services": services,
    })
}

/// `GET /api/members`: every member in config order.
pub fn members(snap: &Snapshot) -> Value {
    Value::Array(
        (0..snap.upstreams.backends().len())
            .map(|m| member(snap, m))
            .collect(),
    )
}

/// One member: `{"name","address","fqdn","weight","tls","state":"active"|"draining",
/// "healthy","in_flight","services":{"owa":bool,...},"last_checks":{"owa":
/// {"at_unix_ms","ok","detail"},...}}`. `healthy` is true when every service
/// is up on it; `last_checks` has no entry for a service not probed yet.
pub fn member(snap: &Snapshot, m: usize) -> Value {
    let b: &Backend = &snap.upstreams.backends()[m];
    let mut services = Map::new();
    let mut checks = Map::new();
    let mut healthy = true;
    for (s, svc) in snap.cfg.services.iter().enumerate() {
        let cell = b.cell(s);
        let up = cell.is_up();
        healthy &= up;
        services.insert(svc.name.clone(), json!(up));
        if let Some((at, ok, detail)) = cell.last_check() {
            checks.insert(
                svc.name.clone(),
                json!({"at_unix_ms": at, "ok": ok, "detail": detail}),
            );
        }
    }
    let weight = snap.cfg.members.get(m).map(|c| c.weight);
    json!({
        "name": b.name,
        "address": b.address.to_string(),
        "fqdn": b.fqdn,
        "weight": weight,
        "tls": b.tls.is_some(),
        "state": if b.state.is_draining() { "draining" } else { "active" },
        "healthy": healthy,
        "in_flight": b.state.in_flight(),
        "services": services,
        "last_checks": checks,
    })
}

/// `GET /api/databases`: `[{"name","rpc_client_access_server"}]`, the
/// value `null` when unset.
pub fn databases(snap: &Snapshot) -> Value {
    json!(crate::directory::list_databases(&snap.cfg))
}

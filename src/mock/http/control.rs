//! `/mock/*`: switches for tests and demos. `POST /mock/fail/<service>`,
//! `POST /mock/heal/<service>` (`smtp` too: the hub transport greets
//! `421` while failed), `POST /mock/latency?ms=N`,
//! `GET /mock/state` (JSON), `GET /mock/directory` (the mailboxes:
//! `{"mailboxes": [{"address", "guid", "display_name", "database"}]}`).
//! Never delayed by the added latency. (`/mock/dag/*` is `dag::endpoints`.)

use std::sync::atomic::Ordering;

use http::{Method, Response, StatusCode};

use crate::mock::http::health;
use crate::mock::http::request::query_param;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// Largest added latency accepted: 10 minutes, in milliseconds.
const MAX_LATENCY_MS: u64 = 600_000;

/// Answers a `/mock/...` request; `path` is lower case.
pub fn handle(shared: &Shared, method: &Method, path: &str, uri: &http::Uri) -> Response<Body> {
    let rest = path.trim_start_matches("/mock/");
    if rest == "state" || rest == "directory" {
        if method != Method::GET {
            return response::status(StatusCode::METHOD_NOT_ALLOWED);
        }
        return if rest == "state" {
            state(shared)
        } else {
            let body = crate::mock::directory::lab().to_json();
            response::with_body(StatusCode::OK, response::JSON, body.to_string())
        };
    }
    if method != Method::POST {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if rest == "latency" {
        let ms = query_param(uri, "ms").and_then(|v| v.parse::<u64>().ok());
        let Some(ms) = ms.filter(|ms| *ms <= MAX_LATENCY_MS) else {
            return response::status(StatusCode::BAD_REQUEST);
        };
        shared.latency_ms.store(ms, Ordering::Relaxed);
        return state(shared);
    }
    let (action, service) = rest.split_once('/').unwrap_or((rest, ""));
    // `smtp` is the hub transport: failed, it greets 421.
    let service = if service.eq_ignore_ascii_case("smtp") {
        Some("smtp")
    } else {
        health::service_named(service)
    };
    let Some(service) = service else {
        return response::status(StatusCode::NOT_FOUND);
    };
    match action {
        "fail" => shared.health.set_failed(service, true),
        "heal" => shared.health.set_failed(service, false),
        _ => return response::status(StatusCode::NOT_FOUND),
    }
    tracing::info!(server = %shared.name, service, action, "mock switch");
    state(shared)
}

fn state(shared: &Shared) -> Response<Body> {
    let body = serde_json::json!({
        "name": shared.name,
        "fqdn": shared.fqdn,
        "failed": shared.health.failed(),
        "latency_ms": shared.latency_ms.load(Ordering::Relaxed),
        "rpc": shared.rpc.snapshot(),
        "connections": shared.connections.load(Ordering::Relaxed),
    });
    response::with_body(StatusCode::OK, response::JSON, body.to_string())
}

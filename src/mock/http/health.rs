//! Per-service health checks (`/<prefix>/healthcheck.htm`, Exchange's
//! Managed Availability probe pages) and the switches that make one fail.

use std::collections::BTreeSet;
use std::sync::Mutex;

use http::{Response, StatusCode};

use crate::mock::http::request::under;
use crate::mock::http::response::{self, Body};

/// The services: (short name used by `/mock/fail/<name>`, path prefix in
/// lower case).
pub const SERVICES: &[(&str, &str)] = &[
    ("owa", "/owa"),
    ("ecp", "/ecp"),
    ("ews", "/ews"),
    ("eas", "/microsoft-server-activesync"),
    ("autodiscover", "/autodiscover"),
    ("rpc", "/rpc"),
    ("mapi", "/mapi"),
    ("oab", "/oab"),
    ("powershell", "/powershell"),
];

/// The short service name for a short name typed in any case.
pub fn service_named(name: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
        .map(|(short, _)| *short)
}

/// The service whose health page `path` (lower case) is.
pub fn health_page(path: &str) -> Option<&'static str> {
    let dir = path.strip_suffix("/healthcheck.htm")?;
    SERVICES
        .iter()
        .find(|(_, prefix)| *prefix == dir)
        .map(|(short, _)| *short)
}

/// The service a lower-cased path belongs to.
pub fn service_of(path: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(_, prefix)| under(path, prefix))
        .map(|(short, _)| *short)
}

/// Which services were made to fail.
#[derive(Debug, Default)]
pub struct HealthState {
    failed: Mutex<BTreeSet<&'static str>>,
}

impl HealthState {
    /// Makes `service` fail (`true`) or heal (`false`).
    pub fn set_failed(&self, service: &'static str, failed: bool) {
        let mut set = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            set.insert(service);
        } else {
            set.remove(service);
        }
    }

    /// Whether `service` was made to fail.
    pub fn is_failed(&self, service: &str) -> bool {
        let set = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(service)
    }

    /// The failed services, sorted.
    pub fn failed(&self) -> Vec<&'static str> {
        let set = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        set.iter().copied().collect()
    }
}

/// The health page of `service` on server `name`: `200 OK<br/>NAME`, or
/// `503` when the service was made to fail.
pub fn page(state: &HealthState, service: &str, name: &str) -> Response<Body> {
    if state.is_failed(service) {
        response::with_body(
            StatusCode::SERVICE_UNAVAILABLE,
            response::HTML,
            format!("503 Service Unavailable<br/>{name}"),
        )
    } else {
        response::with_body(StatusCode::OK, response::HTML, format!("200 OK<br/>{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_pages_map_to_services() {
        assert_eq!(health_page("/owa/healthcheck.htm"), Some("owa"));
        assert_eq!(
            health_page("/microsoft-server-activesync/healthcheck.htm"),
            Some("eas")
        );
        assert_eq!(health_page("/nothing/healthcheck.htm"), None);
        assert_eq!(health_page("/owa/x/healthcheck.htm"), None);
        assert_eq!(service_of("/ews/exchange.asmx"), Some("ews"));
        assert_eq!(service_named("PowerShell"), Some("powershell"));
    }

    #[test]
    fn fail_and_heal() {
        let state = HealthState::default();
        assert_eq!(page(&state, "owa", "EX1").status(), StatusCode::OK);
        state.set_failed("owa", true);
        assert_eq!(
            page(&state, "owa", "EX1").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(page(&state, "ews", "EX1").status(), StatusCode::OK);
        assert_eq!(state.failed(), vec!["owa"]);
        state.set_failed("owa", false);
        assert!(state.failed().is_empty());
    }
}

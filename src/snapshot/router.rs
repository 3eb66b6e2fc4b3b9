//! From a request path to a service: case-insensitive prefix matching on
//! whole path segments, as IIS matches virtual directories.

use crate::config::ServiceConfig;

/// Where a path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Index into the config's services.
    Service(usize),
    /// `/`: redirect to `/owa/`.
    Root,
    /// No service: the array answers 404.
    NotFound,
}

/// The services' prefixes, longest first so `/owa/calendar` beats `/owa`.
#[derive(Debug, Clone)]
pub struct Router {
    prefixes: Vec<(Vec<u8>, usize)>,
}

impl Router {
    pub fn new(services: &[ServiceConfig]) -> Self {
        let mut prefixes: Vec<(Vec<u8>, usize)> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.prefix.trim_end_matches('/').as_bytes().to_vec(), i))
            .collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Router { prefixes }
    }

    /// The route of `path` (without the query).
    pub fn route(&self, path: &str) -> Route {
        if path == "/" || path.is_empty() {
            return Route::Root;
        }
        let p = path.as_bytes();
        for (prefix, i) in &self.prefixes {
            if p.len() >= prefix.len()
                && p[..prefix.len()].eq_ignore_ascii_case(prefix)
                && (p.len() == prefix.len() || p[prefix.len()] == b'/')
            {
                return Route::Service(*i);
            }
        }
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Affinity;
    use std::time::Duration;

    fn svc(name: &str, prefix: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            prefix: prefix.into(),
            health: format!("{prefix}/healthcheck.htm"),
            health_kind: crate::config::HealthKind::Http,
            idle_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            affinity: Affinity::None,
            rewrite: false,
            allow_from: None,
        }
    }

    #[test]
    fn routes_case_insensitively_on_segments() {
        let r = Router::new(&[
            svc("owa", "/owa"),
            svc("ews", "/EWS"),
            svc("eas", "/Microsoft-Server-ActiveSync"),
        ]);
        assert_eq!(r.route("/owa"), Route::Service(0));
        assert_eq!(r.route("/OWA/"), Route::Service(0));
        assert_eq!(r.route("/Owa/auth.owa"), Route::Service(0));
        assert_eq!(r.route("/ews/exchange.asmx"), Route::Service(1));
        assert_eq!(r.route("/microsoft-server-activesync"), Route::Service(2));
        assert_eq!(r.route("/owafoo"), Route::NotFound);
        assert_eq!(r.route("/nothing"), Route::NotFound);
        assert_eq!(r.route("/"), Route::Root);
    }

    #[test]
    fn longest_prefix_wins() {
        let r = Router::new(&[svc("a", "/owa"), svc("b", "/owa/special")]);
        assert_eq!(r.route("/owa/special/x"), Route::Service(1));
        assert_eq!(r.route("/owa/other"), Route::Service(0));
    }
}

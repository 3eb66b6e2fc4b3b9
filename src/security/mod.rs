//! Security in front of the members: the Exchange shields (rules that
//! refuse the request shapes of the known front-end exploit chains),
//! `[[service]] allow_from`, failed-logon lockout and response hardening.
//!
//! [`Shields`] is built from one config (and carries the lockout tables of
//! the one before it); the forwarding path asks it three things:
//!
//! - [`Shields::inspect`], with the request head, once the route is known
//!   and before a member is chosen: pass, 403 (a rule or `allow_from`) or
//!   429 (a lockout). It also drops the internal routing headers a client
//!   may not send through (see `rules::routing_headers`).
//! - [`Shields::observe`], with each member's answer: a 401 to a request
//!   with credentials, or OWA's failed-logon redirect, is a failed logon;
//!   a success makes the address known good for the user (smart lockout).
//! - [`Shields::harden`], with each member's answer head: HSTS and the
//!   removal of version headers, when configured.
//!
//! Modules: `normalize` (the request target as rules see it), `rules` (one
//! file per exploit chain behind the [`rules::Rule`] trait), `credentials`
//! (user names of Basic, NTLM and OWA's form), `lockout` (the tables),
//! `cidr` (`allow_from` ranges).
//!
//! Cost on the request path: an ordinary request (no rule matching, no
//! lock running) is normalized on the stack and checked without any
//! allocation; `benches/shields.rs` measures it and
//! `tests/shields_alloc.rs` counts its allocations (zero).

pub mod credentials;
pub mod lockout;
pub mod normalize;
pub mod rules;

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, LOCATION, STRICT_TRANSPORT_SECURITY};
use http::{Method, StatusCode};
use prometheus::IntCounter;

pub use crate::config::Cidr;
pub use credentials::{Kind, UserName};
pub use lockout::{Limits, Scope};

use crate::config::Config;
use crate::metrics::Metrics;
use credentials::Attempt;
use lockout::Lockout;
use rules::{Request, RULES};

/// The `rule` label of requests refused by `[[service]] allow_from`.
pub const ALLOW_FROM: &str = "allow-from";

/// The path of OWA's forms logon (normalized): `POST /owa/auth.owa`.
pub const OWA_LOGON_PATH: &[u8] = b"/owa/auth.owa";

/// Every `rule` label of `casarray_blocked_requests_total`: each rule's id,
/// then [`ALLOW_FROM`].
pub fn blocked_labels() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.id()).chain([ALLOW_FROM])
}

/// Headers by which members tell their software and build, removed with
/// `strip_version_headers`.
const VERSION_HEADERS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-owa-version",
];

/// What the array does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On to a member.
    Pass,
    /// 403: refused by the rule (or [`ALLOW_FROM`]) of this id.
    Blocked(&'static str),
    /// 429 with `Retry-After: retry_after` (seconds).
    Locked { scope: Scope, retry_after: u32 },
}

/// The outcome of [`Shields::inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    pub verdict: Verdict,
    /// A POST to OWA's logon form: the caller reads the start of the body
    /// for the user name ([`credentials::owa_form_user`]) and asks
    /// [`Shields::owa_user_locked`].
    pub owa_logon: bool,
}

/// What the request of an OWA forms logon carried, kept in the request's
/// extensions until the member answers.
#[derive(Debug, Clone, Copy)]
pub struct OwaLogon {
    pub user: Option<UserName>,
}

/// The security of one config.
pub struct Shields {
    /// Indexes in [`RULES`] of the rules on, in order.
    enabled: Box<[usize]>,
    /// `internal-routing-headers` is on: remove the client's copies of the
    /// headers of its removed kind.
    strip_routing_headers: bool,
    /// `casarray_blocked_requests_total`, indexed like [`RULES`], then
    /// allow-from.
    blocked: Box<[IntCounter]>,
    /// `allow_from` per service, indexed like the config's services.
    allow: Box<[Option<Box<[Cidr]>>]>,
    lockout: Arc<Lockout>,
    limits: Limits,
    /// `casarray_failed_logons_total`, indexed like [`Kind::ALL`].
    failed: Box<[IntCounter]>,
    /// `casarray_lockouts_total`, indexed like [`Scope::ALL`].
    lockouts: Box<[IntCounter]>,
    /// `casarray_locked_out_requests_total`, indexed like [`Scope::ALL`].
    locked_out: Box<[IntCounter]>,
    hsts: Option<HeaderValue>,
    strip_version_headers: bool,
}

impl Shields {
    /// The shields of `cfg`; the lockout tables are `previous`'s (they
    /// outlive reloads), or new ones.
    pub fn build(cfg: &Config, metrics: &Metrics, previous: Option<&Shields>) -> Shields {
        // Every labelled series exists from the first scrape, at 0.
        for kind in Kind::ALL {
            metrics.failed_logons.with_label_values(&[kind.label()]);
        }
        for scope in Scope::ALL {
            metrics.lockouts.with_label_values(&[scope.label()]);
            metrics
                .locked_out_requests
                .with_label_values(&[scope.label()]);
        }
        for table in ["addresses", "users", "known_good"] {
            metrics.lockout_entries.with_label_values(&[table]);
        }
        let sec = &cfg.security;
        let on = |i: usize| {
            sec.exchange_shields && !sec.disabled_rules.iter().any(|d| d == RULES[i].id())
        };
        let enabled: Box<[usize]> = (0..RULES.len()).filter(|&i| on(i)).collect();
        let strip_routing_headers = rules::index_of("internal-routing-headers").is_some_and(on);
        let lockout = match previous {
            Some(p) => Arc::clone(&p.lockout),
            None => Arc::new(Lockout::new(lockout::Gauges {
                addresses: metrics.lockout_entries.with_label_values(&["addresses"]),
                users: metrics.lockout_entries.with_label_values(&["users"]),
                known_good: metrics.lockout_entries.with_label_values(&["known_good"]),
            })),
        };
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let hsts = sec.hsts_max_age.and_then(|age| {
            let sub = if sec.hsts_include_subdomains {
                "; includeSubDomains"
            } else {
                ""
            };
            HeaderValue::from_str(&format!("max-age={}{sub}", age.as_secs())).ok()
        });
        Shields {
            enabled,
            strip_routing_headers,
            blocked: blocked_labels()
                .map(|l| metrics.blocked_requests.with_label_values(&[l]))
                .collect(),
            allow: cfg
                .services
                .iter()
                .map(|s| s.allow_from.as_ref().map(|a| a.clone().into_boxed_slice()))
                .collect(),
            lockout,
            limits: Limits {
                failures: sec.lockout_failures,
                window: secs(sec.lockout_window),
                lock: secs(sec.lockout_time),
            },
            failed: Kind::ALL
                .iter()
                .map(|k| metrics.failed_logons.with_label_values(&[k.label()]))
                .collect(),
            lockouts: Scope::ALL
                .iter()
                .map(|s| metrics.lockouts.with_label_values(&[s.label()]))
                .collect(),
            locked_out: Scope::ALL
                .iter()
                .map(|s| metrics.locked_out_requests.with_label_values(&[s.label()]))
                .collect(),
            hsts,
            strip_version_headers: sec.strip_version_headers,
        }
    }

    /// The ids of the rules on.
    pub fn enabled_rules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.enabled.iter().map(|&i| RULES[i].id())
    }

    /// Checks a request head for service `service` (an index into the
    /// config's services) from `peer`. `target` is the request target as
    /// the member will get it (origin-form; the absolute form is accepted
    /// too). Removes the internal headers of the removed kind from
    /// `headers`. Counts what it refuses. Allocates nothing for a request
    /// that passes, when no lock is running.
    pub fn inspect(
        &self,
        service: usize,
        peer: IpAddr,
        method: &Method,
        target: &[u8],
        headers: &mut HeaderMap,
    ) -> Inspection {
        let verdict = |verdict| Inspection {
            verdict,
            owa_logon: false,
        };
        if let Some(Some(allowed)) = self.allow.get(service) {
            if !allowed.iter().any(|c| c.contains(peer)) {
                self.blocked[RULES.len()].inc();
                return verdict(Verdict::Blocked(ALLOW_FROM));
            }
        }
        if self.strip_routing_headers {
            rules::routing_headers::strip(headers);
        }
        let target = normalize::normalize(target);
        let req = Request {
            method,
            target: &target,
            headers,
        };
        for &i in self.enabled.iter() {
            if RULES[i].check(&req) {
                self.blocked[i].inc();
                return verdict(Verdict::Blocked(RULES[i].id()));
            }
        }
        let now = self.lockout.now();
        if self.lockout.anything_locked(now) {
            let address = self.lockout.address_key(peer);
            if let Some(left) = self.lockout.address_locked(address, now) {
                return verdict(self.locked(Scope::Address, left));
            }
            if let Some(user) = credentials::from_authorization(headers).and_then(|a| a.user) {
                let user = self.lockout.user_key(user.as_bytes());
                if let Some(left) = self.lockout.user_locked(user, address, now) {
                    return verdict(self.locked(Scope::User, left));
                }
            }
        }
        Inspection {
            verdict: Verdict::Pass,
            owa_logon: method == Method::POST && target.path() == OWA_LOGON_PATH,
        }
    }

    fn locked(&self, scope: Scope, retry_after: u32) -> Verdict {
        self.locked_out[scope as usize].inc();
        Verdict::Locked {
            scope,
            retry_after: retry_after.max(1),
        }
    }

    /// For an OWA logon whose form names `user`: 429 when that user is
    /// locked out for `peer`.
    pub fn owa_user_locked(&self, peer: IpAddr, user: &UserName) -> Option<Verdict> {
        let now = self.lockout.now();
        if !self.lockout.anything_locked(now) {
            return None;
        }
        let address = self.lockout.address_key(peer);
        let user = self.lockout.user_key(user.as_bytes());
        let left = self.lockout.user_locked(user, address, now)?;
        Some(self.locked(Scope::User, left))
    }

    /// Watches a member's answer (`status`, `response` head) to a request
    /// from `peer` with head `request` (and `owa` when it was an OWA forms
    /// logon) for failed and successful logons.
    pub fn observe(
        &self,
        peer: IpAddr,
        request: &HeaderMap,
        owa: Option<&OwaLogon>,
        status: StatusCode,
        response: &HeaderMap,
    ) {
        let succeeded = status.is_success() || status.is_redirection();
        if status != StatusCode::UNAUTHORIZED && !succeeded {
            return;
        }
        let (attempt, failed) = match owa {
            Some(logon) => {
                if !status.is_redirection() {
                    return;
                }
                let failed = response
                    .get(LOCATION)
                    .is_some_and(|l| credentials::is_owa_logon_failure(l.as_bytes()));
                let attempt = Attempt {
                    kind: Kind::OwaForm,
                    user: logon.user,
                };
                (attempt, failed)
            }
            None => match credentials::from_authorization(request) {
                Some(a) => (a, status == StatusCode::UNAUTHORIZED),
                None => return,
            },
        };
        let now = self.lockout.now();
        let address = self.lockout.address_key(peer);
        let user = attempt.user.map(|u| self.lockout.user_key(u.as_bytes()));
        if !failed {
            if let Some(user) = user {
                self.lockout.success(address, user, now);
            }
            return;
        }
        self.failed[attempt.kind as usize].inc();
        let started = self.lockout.failure(address, user, now, self.limits);
        if started.address {
            self.lockouts[Scope::Address as usize].inc();
            tracing::warn!(
                target: "security",
                client = %peer,
                failures = self.limits.failures,
                window_s = self.limits.window,
                lockout_s = self.limits.lock,
                "client address locked out: too many failed logons"
            );
        }
        if started.user {
            self.lockouts[Scope::User as usize].inc();
            tracing::warn!(
                target: "security",
                client = %peer,
                user = %attempt.user.map(|u| u.display()).unwrap_or_default(),
                failures = self.limits.failures,
                window_s = self.limits.window,
                lockout_s = self.limits.lock,
                "user locked out for addresses that have not logged it on: too many failed logons"
            );
        }
    }

    /// Response hardening on a member's answer head: HSTS
    /// (`hsts_max_age`), version headers removed (`strip_version_headers`).
    pub fn harden(&self, headers: &mut HeaderMap) {
        if self.strip_version_headers {
            for name in VERSION_HEADERS {
                headers.remove(*name);
            }
        }
        if let Some(hsts) = &self.hsts {
            headers.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_series_are_there_from_the_start() {
        let (_dir, cfg) = crate::upstream::tests::config(1, "");
        let metrics = Metrics::new().unwrap();
        let _shields = Shields::build(&cfg, &metrics, None);
        let text = metrics.render();
        for series in [
            "casarray_blocked_requests_total{rule=\"proxylogon-anonresource\"} 0",
            "casarray_blocked_requests_total{rule=\"owassrf-powershell\"} 0",
            "casarray_blocked_requests_total{rule=\"allow-from\"} 0",
            "casarray_failed_logons_total{kind=\"owa-form\"} 0",
            "casarray_lockouts_total{scope=\"user\"} 0",
            "casarray_locked_out_requests_total{scope=\"address\"} 0",
            "casarray_lockout_entries{table=\"known_good\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
        let rules = text
            .lines()
            .filter(|l| l.starts_with("casarray_blocked_requests_total{"))
            .count();
        assert_eq!(rules, crate::security::rules::RULES.len() + 1);
    }

    use http::header::HeaderName;

    fn config(extra: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let text = format!(
            "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
             [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"bundle.pem\"\n\
             [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n{extra}"
        );
        let cfg = crate::config::parse(&text, &dir.path().join("casarray.toml")).unwrap();
        (dir, cfg)
    }

    fn service(cfg: &Config, name: &str) -> usize {
        cfg.services.iter().position(|s| s.name == name).unwrap()
    }

    fn inspect(
        sh: &Shields,
        cfg: &Config,
        svc: &str,
        peer: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Verdict {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        sh.inspect(
            service(cfg, svc),
            peer.parse().unwrap(),
            &Method::GET,
            target.as_bytes(),
            &mut h,
        )
        .verdict
    }

    fn count(m: &Metrics, rule: &str) -> u64 {
        m.blocked_requests.with_label_values(&[rule]).get()
    }

    #[test]
    fn rules_block_count_and_turn_off_one_by_one() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("");
        let sh = Shields::build(&cfg, &m, None);
        assert_eq!(sh.enabled_rules().count(), RULES.len());
        let owassrf = "/owa/x@y.com/powershell";
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", owassrf, &[]),
            Verdict::Blocked("owassrf-powershell")
        );
        assert_eq!(count(&m, "owassrf-powershell"), 1);
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", "/owa/", &[]),
            Verdict::Pass
        );

        let (_d, cfg) = config("[security]\ndisabled_rules = [\"owassrf-powershell\"]\n");
        let sh = Shields::build(&cfg, &m, None);
        assert!(!sh.enabled_rules().any(|r| r == "owassrf-powershell"));
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", owassrf, &[]),
            Verdict::Pass
        );
        let anon = [("cookie", "X-AnonResource=true")];
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", "/owa/", &anon),
            Verdict::Blocked("proxylogon-anonresource")
        );

        let (_d, cfg) = config("[security]\nexchange_shields = false\n");
        let sh = Shields::build(&cfg, &m, None);
        assert_eq!(sh.enabled_rules().count(), 0);
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", owassrf, &anon),
            Verdict::Pass
        );
    }

    #[test]
    fn powershell_is_internal_by_default() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("");
        let sh = Shields::build(&cfg, &m, None);
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "fd00::5",
            "::ffff:192.168.1.2",
        ] {
            assert_eq!(
                inspect(&sh, &cfg, "powershell", inside, "/PowerShell/", &[]),
                Verdict::Pass,
                "{inside}"
            );
        }
        for outside in ["203.0.113.5", "2001:db8::1"] {
            assert_eq!(
                inspect(&sh, &cfg, "powershell", outside, "/PowerShell/", &[]),
                Verdict::Blocked(ALLOW_FROM),
                "{outside}"
            );
        }
        assert_eq!(count(&m, ALLOW_FROM), 2);
        assert_eq!(
            inspect(&sh, &cfg, "owa", "203.0.113.5", "/owa/", &[]),
            Verdict::Pass
        );
    }

    #[test]
    fn routing_headers_are_removed_or_refused() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("");
        let sh = Shields::build(&cfg, &m, None);
        let mut h = HeaderMap::new();
        h.insert("x-feserver", HeaderValue::from_static("EX9"));
        h.insert("x-anchormailbox", HeaderValue::from_static("alice@lab.com"));
        let i = sh.inspect(
            0,
            "203.0.113.5".parse().unwrap(),
            &Method::GET,
            b"/owa/",
            &mut h,
        );
        assert_eq!(i.verdict, Verdict::Pass);
        assert!(!h.contains_key("x-feserver") && h.contains_key("x-anchormailbox"));
        assert_eq!(
            inspect(
                &sh,
                &cfg,
                "owa",
                "203.0.113.5",
                "/owa/",
                &[("X-CommonAccessToken", "x")]
            ),
            Verdict::Blocked("internal-routing-headers")
        );
    }

    #[test]
    fn owa_logon_posts_are_flagged() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("");
        let sh = Shields::build(&cfg, &m, None);
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        for (method, target, want) in [
            (Method::POST, "/owa/auth.owa", true),
            (Method::POST, "/OWA/Auth.owa", true),
            (Method::POST, "//owa//auth.owa", true),
            (Method::GET, "/owa/auth.owa", false),
            (Method::POST, "/owa/auth/logon.aspx", false),
        ] {
            let i = sh.inspect(0, peer, &method, target.as_bytes(), &mut HeaderMap::new());
            assert_eq!(i.owa_logon, want, "{method} {target}");
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn failed_logons_lock_the_address_and_smartly_the_user() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("[security]\nlockout_failures = 3\n");
        let sh = Shields::build(&cfg, &m, None);
        let attacker: IpAddr = "203.0.113.5".parse().unwrap();
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        let elsewhere: IpAddr = "192.0.2.9".parse().unwrap();
        let ews = service(&cfg, "ews");
        let good = basic("alice@lab.com", "right");
        sh.observe(home, &good, None, StatusCode::OK, &HeaderMap::new());
        let bad = basic("LAB\\alice", "wrong");
        for _ in 0..3 {
            sh.observe(
                attacker,
                &bad,
                None,
                StatusCode::UNAUTHORIZED,
                &HeaderMap::new(),
            );
        }
        assert_eq!(m.failed_logons.with_label_values(&["basic"]).get(), 3);
        assert_eq!(m.lockouts.with_label_values(&["address"]).get(), 1);
        assert_eq!(m.lockouts.with_label_values(&["user"]).get(), 1);
        let v = sh.inspect(
            ews,
            attacker,
            &Method::POST,
            b"/EWS/Exchange.asmx",
            &mut HeaderMap::new(),
        );
        assert!(
            matches!(v.verdict, Verdict::Locked { scope: Scope::Address, retry_after } if retry_after > 890)
        );
        // Alice at home goes on; alice from a new place is locked; bob is not.
        let v = sh.inspect(
            ews,
            home,
            &Method::POST,
            b"/EWS/Exchange.asmx",
            &mut good.clone(),
        );
        assert_eq!(v.verdict, Verdict::Pass);
        let v = sh.inspect(
            ews,
            elsewhere,
            &Method::POST,
            b"/EWS/Exchange.asmx",
            &mut good.clone(),
        );
        assert!(matches!(
            v.verdict,
            Verdict::Locked {
                scope: Scope::User,
                ..
            }
        ));
        let v = sh.inspect(
            ews,
            elsewhere,
            &Method::POST,
            b"/EWS/Exchange.asmx",
            &mut basic("bob", "x"),
        );
        assert_eq!(v.verdict, Verdict::Pass);
        assert_eq!(
            m.locked_out_requests.with_label_values(&["address"]).get(),
            1
        );
        assert_eq!(m.locked_out_requests.with_label_values(&["user"]).get(), 1);
        // OWA's form user too.
        let alice = UserName::from_bytes(b"alice").unwrap();
        assert!(sh.owa_user_locked(elsewhere, &alice).is_some());
        assert!(sh.owa_user_locked(home, &alice).is_none());
        // The tables survive a rebuild (reload).
        let again = Shields::build(&cfg, &m, Some(&sh));
        let v = again.inspect(ews, attacker, &Method::GET, b"/owa/", &mut HeaderMap::new());
        assert!(matches!(v.verdict, Verdict::Locked { .. }));
    }

    #[test]
    fn owa_form_failures_are_the_logon_page_redirect() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("[security]\nlockout_failures = 2\n");
        let sh = Shields::build(&cfg, &m, None);
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        let logon = OwaLogon {
            user: UserName::from_bytes(b"alice"),
        };
        let mut failed = HeaderMap::new();
        failed.insert(
            LOCATION,
            HeaderValue::from_static("https://ex1.lab.local/owa/auth/logon.aspx?url=x&reason=2"),
        );
        let mut ok = HeaderMap::new();
        ok.insert(
            LOCATION,
            HeaderValue::from_static("https://ex1.lab.local/owa/"),
        );
        sh.observe(
            peer,
            &HeaderMap::new(),
            Some(&logon),
            StatusCode::FOUND,
            &ok,
        );
        sh.observe(
            peer,
            &HeaderMap::new(),
            Some(&logon),
            StatusCode::OK,
            &failed,
        );
        assert_eq!(m.failed_logons.with_label_values(&["owa-form"]).get(), 0);
        sh.observe(
            peer,
            &HeaderMap::new(),
            Some(&logon),
            StatusCode::FOUND,
            &failed,
        );
        sh.observe(
            peer,
            &HeaderMap::new(),
            Some(&logon),
            StatusCode::FOUND,
            &failed,
        );
        assert_eq!(m.failed_logons.with_label_values(&["owa-form"]).get(), 2);
        assert_eq!(m.lockouts.with_label_values(&["address"]).get(), 1);
        // The peer logged alice on first: no user lock for it.
        assert_eq!(m.lockouts.with_label_values(&["user"]).get(), 0);
    }

    #[test]
    fn unauthenticated_answers_and_ntlm_challenges_are_no_failures() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("[security]\nlockout_failures = 1\n");
        let sh = Shields::build(&cfg, &m, None);
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        sh.observe(
            peer,
            &HeaderMap::new(),
            None,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
        );
        let mut negotiate = HeaderMap::new();
        let type1 = crate::mock::ntlm::header_value(
            crate::mock::ntlm::Scheme::Ntlm,
            &crate::mock::ntlm::negotiate_message(),
        );
        negotiate.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&type1).unwrap(),
        );
        sh.observe(
            peer,
            &negotiate,
            None,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
        );
        sh.observe(
            peer,
            &basic("alice", "x"),
            None,
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
        );
        assert_eq!(m.lockouts.with_label_values(&["address"]).get(), 0);
        let type3 = crate::mock::ntlm::authenticate_message("alice", "LAB", "wrong", [1; 8]);
        let mut auth = HeaderMap::new();
        let v = crate::mock::ntlm::header_value(crate::mock::ntlm::Scheme::Negotiate, &type3);
        auth.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap(),
        );
        sh.observe(
            peer,
            &auth,
            None,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
        );
        assert_eq!(m.failed_logons.with_label_values(&["ntlm"]).get(), 1);
        assert_eq!(m.lockouts.with_label_values(&["address"]).get(), 1);
    }

    #[test]
    fn hardening_is_off_by_default() {
        let m = Metrics::new().unwrap();
        let (_d, cfg) = config("");
        let sh = Shields::build(&cfg, &m, None);
        let mut h = HeaderMap::new();
        h.insert("x-powered-by", HeaderValue::from_static("ASP.NET"));
        sh.harden(&mut h);
        assert!(h.contains_key("x-powered-by") && !h.contains_key(STRICT_TRANSPORT_SECURITY));

        let (_d, cfg) = config(
            "[security]\nhsts_max_age = \"365d\"\nhsts_include_subdomains = true\nstrip_version_headers = true\n",
        );
        let sh = Shields::build(&cfg, &m, None);
        for (k, v) in [
            ("server", "Microsoft-IIS/10.0"),
            ("x-powered-by", "ASP.NET"),
            ("x-aspnet-version", "4.0.30319"),
            ("x-owa-version", "15.2.1118.7"),
            ("strict-transport-security", "max-age=1"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        sh.harden(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(
            h[STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
    }
}

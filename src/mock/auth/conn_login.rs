//! The connection-bound NTLM / Negotiate login, as IIS does it: the three
//! legs authenticate the TCP connection, not a request.
//!
//! On the authenticated services (every service but OWA, which logs on
//! with a form), a request carrying `Authorization: NTLM <Type 1>` (or
//! `Negotiate`) is answered `401` with `WWW-Authenticate: NTLM <Type 2>`
//! (mirroring the scheme and, for `Negotiate`, the SPNEGO wrapping), the
//! server challenge kept in this connection's state. The Type 3 that follows is checked against the challenge of this
//! same connection (none there: `401`, as IIS). Success authenticates the
//! connection as that mailbox for the rest of its life: that request and
//! every later one on the connection, with or without `Authorization`, are
//! served as that user, and every response on it carries `X-Mock-User`.
//! A SPNEGO login's last answer carries the `accept-completed` token, as
//! IIS sends it. A new Type 1 restarts the login and forgets the identity. Over HTTP/2
//! the whole connection (every stream) shares one login.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth::ntlm::spnego::{self, NegState};
use crate::mock::auth::ntlm::{self, Scheme};
use crate::mock::directory;
use crate::mock::http::health;
use crate::mock::http::request::read_body;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::users::{normalize_logon, Mailbox};

/// Largest body read and dropped before a `401` leg, so that the client's
/// connection stays usable: 1 MiB. A larger body is left unread (hyper
/// then closes the connection).
const MAX_LEG_BODY: usize = 1024 * 1024;

/// The NetBIOS domain the mock claims in its challenges.
const DOMAIN: &str = "LAB";

/// The identity an NTLM login gave the connection, in the request's
/// extensions for the handlers.
#[derive(Debug, Clone)]
pub struct ConnectionUser(pub Mailbox);

/// One client TCP connection's login state.
#[derive(Debug)]
pub struct ConnLogin {
    id: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The challenge of the last Type 2 sent on this connection, used once.
    challenge: Option<[u8; 8]>,
    user: Option<Mailbox>,
}

/// What the login layer decided about a request.
pub enum Step {
    /// Answer this (a challenge or a refusal) without routing.
    Answer(Response<Body>),
    /// Route the request (with `ConnectionUser` set when authenticated);
    /// the answer gets the `WWW-Authenticate` value given, if any (SPNEGO's
    /// final accept-completed token).
    Route(Request<Incoming>, Option<HeaderValue>),
}

impl ConnLogin {
    /// The state of connection number `id` (`X-Mock-Connection`).
    pub fn new(id: u64) -> Arc<ConnLogin> {
        Arc::new(ConnLogin {
            id,
            state: Mutex::new(State::default()),
        })
    }

    /// The connection's number, counted from 1 per process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The mailbox this connection logged in as, if any.
    pub fn user(&self) -> Option<Mailbox> {
        self.lock().user.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the login legs for a request to lower-cased `path`.
    pub async fn step(&self, shared: &Shared, path: &str, mut req: Request<Incoming>) -> Step {
        if !authenticated_service(path) {
            return Step::Route(req, None);
        }
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let scheme = v.trim().split(' ').next().unwrap_or("");
                let ours =
                    scheme.eq_ignore_ascii_case("ntlm") || scheme.eq_ignore_ascii_case("negotiate");
                ours.then(|| ntlm::parse_token(v))
            });
        let mut reply = None;
        match token {
            None => {}
            Some(None) => return Step::Answer(refuse(req).await),
            Some(Some(token)) => {
                let msg = token.ntlm.as_deref().unwrap_or_default();
                match ntlm::message_type(msg) {
                    Some(ntlm::NEGOTIATE) => {
                        return Step::Answer(self.challenge(shared, &token, msg, req).await)
                    }
                    Some(ntlm::AUTHENTICATE) => {
                        if !self.authenticate(msg) {
                            self.lock().user = None;
                            drain(req).await;
                            return Step::Answer(bare_challenge());
                        }
                        if token.spnego {
                            let done = spnego::resp(NegState::AcceptCompleted, false, None);
                            reply = HeaderValue::from_str(&ntlm::header_value(token.scheme, &done))
                                .ok();
                        }
                    }
                    None if token.spnego && token.ntlm.is_none() => {
                        // SPNEGO offering NTLM after a mechanism the mock
                        // lacks: name NTLM and wait for its NEGOTIATE.
                        drain(req).await;
                        let pick = spnego::resp(NegState::AcceptIncomplete, true, None);
                        return Step::Answer(unauthorized_with(token.scheme, &pick));
                    }
                    _ => return Step::Answer(refuse(req).await),
                }
            }
        }
        if let Some(user) = self.user() {
            req.extensions_mut().insert(ConnectionUser(user));
        }
        Step::Route(req, reply)
    }

    /// Leg 1 -> leg 2: a fresh challenge for this connection, answering
    /// the NEGOTIATE `msg` in `token`'s scheme and wrapping.
    async fn challenge(
        &self,
        shared: &Shared,
        token: &ntlm::Token,
        msg: &[u8],
        req: Request<Incoming>,
    ) -> Response<Body> {
        let mut challenge = [0u8; 8];
        if SystemRandom::new().fill(&mut challenge).is_err() {
            return response::status(StatusCode::INTERNAL_SERVER_ERROR);
        }
        {
            let mut state = self.lock();
            state.challenge = Some(challenge);
            state.user = None;
        }
        drain(req).await;
        let target = ntlm::Target {
            domain: DOMAIN.to_string(),
            computer: shared.name.to_ascii_uppercase(),
            dns_domain: shared
                .fqdn
                .split_once('.')
                .map_or("", |(_, d)| d)
                .to_string(),
            dns_computer: shared.fqdn.clone(),
        };
        let flags = ntlm::server_flags(ntlm::negotiate_flags(msg).unwrap_or_default());
        let msg = ntlm::challenge_message(challenge, &target, flags, ntlm::filetime_now());
        if token.spnego {
            let wrapped = spnego::resp(NegState::AcceptIncomplete, true, Some(&msg));
            unauthorized_with(token.scheme, &wrapped)
        } else {
            unauthorized_with(token.scheme, &msg)
        }
    }

    /// Leg 3: checks the NTLMv2 response against this connection's
    /// challenge (consumed) and, when right, binds the connection to the
    /// mailbox. The user may be typed `alice`, `alice@lab.com` or (user
    /// `alice`, domain `LAB`). A failed leg 3 leaves the connection
    /// anonymous (the caller forgets any earlier identity; the answer is
    /// then a bare challenge).
    fn authenticate(&self, msg: &[u8]) -> bool {
        let challenge = self.lock().challenge.take();
        let (Some(challenge), Some(auth)) = (challenge, ntlm::parse_authenticate(msg)) else {
            return false;
        };
        let found = directory::lab().with_password(&normalize_logon(&auth.user));
        match found {
            Some((mailbox, password)) if ntlm::verify(&auth, &password, challenge) => {
                tracing::debug!(conn = self.id, user = %mailbox.address, "NTLM login");
                self.lock().user = Some(mailbox);
                true
            }
            _ => {
                tracing::debug!(conn = self.id, user = %auth.user, domain = %auth.domain, "NTLM login refused");
                false
            }
        }
    }
}

/// `401` carrying `WWW-Authenticate: <scheme> <base64 token>`.
fn unauthorized_with(scheme: Scheme, token: &[u8]) -> Response<Body> {
    let mut resp = response::status(StatusCode::UNAUTHORIZED);
    if let Ok(v) = HeaderValue::from_str(&ntlm::header_value(scheme, token)) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// Whether lower-cased `path` is under a service that takes NTLM (every
/// service but OWA; never a health page).
fn authenticated_service(path: &str) -> bool {
    health::health_page(path).is_none()
        && health::service_of(path).is_some_and(|service| service != "owa")
}

/// `401` offering `Negotiate` and `NTLM`, without a token: start over.
pub fn bare_challenge() -> Response<Body> {
    let mut resp = response::status(StatusCode::UNAUTHORIZED);
    add_offers(resp.headers_mut());
    resp
}

/// Appends `WWW-Authenticate: Negotiate` and `WWW-Authenticate: NTLM`.
pub fn add_offers(headers: &mut http::HeaderMap) {
    for scheme in [Scheme::Negotiate, Scheme::Ntlm] {
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(scheme.as_str()));
    }
}

async fn refuse(req: Request<Incoming>) -> Response<Body> {
    drain(req).await;
    bare_challenge()
}

/// Reads and drops a leg's body (at most 1 MiB) so the connection stays
/// open for the next leg.
async fn drain(req: Request<Incoming>) {
    let _ = read_body(req.into_body(), MAX_LEG_BODY).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owa_and_health_pages_are_outside_the_login() {
        assert!(authenticated_service("/ews/exchange.asmx"));
        assert!(authenticated_service("/rpc/rpcproxy.dll"));
        assert!(authenticated_service("/microsoft-server-activesync"));
        assert!(authenticated_service("/autodiscover/autodiscover.xml"));
        assert!(!authenticated_service("/owa/"));
        assert!(!authenticated_service("/ews/healthcheck.htm"));
        assert!(!authenticated_service("/mock/state"));
        assert!(!authenticated_service("/nothing"));
    }

    #[test]
    fn bare_challenge_offers_both_schemes() {
        let resp = bare_challenge();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let offers: Vec<_> = resp.headers().get_all(WWW_AUTHENTICATE).iter().collect();
        assert_eq!(offers, ["Negotiate", "NTLM"]);
    }

    #[test]
    fn connection_state_starts_anonymous() {
        let conn = ConnLogin::new(7);
        assert_eq!(conn.id(), 7);
        assert!(conn.user().is_none());
    }
}

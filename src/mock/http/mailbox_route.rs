//! Mailbox-aware routing inside a DAG member: which mailbox a request is
//! for, and whether this server serves it, proxies it to the server with
//! the mailbox database's active copy, or answers `503` (no mounted copy).
//!
//! The mailbox: OWA's session cookie; EWS's Basic credentials or NTLM
//! connection login; MAPI/HTTP's `MailboxId=<guid>@<domain>` (or the
//! authenticated user); Outlook Anywhere's `<guid>@<domain>:6001` target.
//! Autodiscover, ECP, ActiveSync, OAB and PowerShell answer from the
//! directory, here. A request that another server proxied here is served
//! here (never proxied twice).

use http::Request;
use hyper::body::Incoming;

use crate::mock::auth;
use crate::mock::dag::definition::Member;
use crate::mock::dag::Located;
use crate::mock::directory;
use crate::mock::http::owa;
use crate::mock::http::request::query_param;
use crate::mock::shared::Shared;
use crate::mock::users::Mailbox;

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Serve it here.
    Here,
    /// Proxy it to this server for this mailbox.
    Proxy(Member, Mailbox),
    /// The mailbox's database has no mounted copy; the reason.
    Unavailable(String),
}

/// The mailbox `req` (for `service`) is about, if the service is routed by
/// mailbox.
fn mailbox_of(shared: &Shared, service: &str, req: &Request<Incoming>) -> Option<Mailbox> {
    let dir = directory::lab();
    match service {
        "owa" => owa::session(shared, req),
        "ews" => auth::authenticate(req.headers(), req.extensions()),
        "mapi" => query_param(req.uri(), "mailboxid")
            .and_then(|id| dir.by_mailbox_id(&id).cloned())
            .or_else(|| auth::authenticate(req.headers(), req.extensions())),
        "rpc" => {
            let target = req.uri().query()?.split('&').next()?;
            let (mailbox, _port) = target.rsplit_once(':').unwrap_or((target, ""));
            dir.by_mailbox_id(mailbox).cloned()
        }
        _ => None,
    }
}

/// Decides for a request to `service` in a DAG.
pub fn decide(shared: &Shared, service: &str, req: &Request<Incoming>) -> Decision {
    let Some(dag) = shared.databases.dag() else {
        return Decision::Here;
    };
    if req.extensions().get::<auth::token::ProxiedUser>().is_some() {
        return Decision::Here;
    }
    let Some(mailbox) = mailbox_of(shared, service, req) else {
        return Decision::Here;
    };
    match dag.locate(&mailbox.database) {
        Located::Local(_) => Decision::Here,
        Located::Remote(member) => Decision::Proxy(member, mailbox),
        Located::Unavailable(why) => Decision::Unavailable(why),
    }
}

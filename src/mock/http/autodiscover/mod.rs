//! Autodiscover in the three flavours clients use:
//!
//! - `pox`: `POST /Autodiscover/Autodiscover.xml` (Outlook's plain old XML).
//! - `soap`: `POST /autodiscover/autodiscover.svc`, MS-OXWSADISC
//!   `GetUserSettings` (EWS libraries, Outlook), SOAP 1.1 or 1.2.
//! - `json`: `GET /autodiscover/autodiscover.json/v1.0/<mailbox>?Protocol=EWS|ActiveSync`
//!   (Outlook mobile, the new Outlook).
//!
//! Every server name and URL in an answer is this server's own fqdn (in a
//! DAG, the mailbox server is the one holding the database's active copy);
//! the array rewrites them.

mod json;
mod pox;
mod soap;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::dag::Located;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// The lab's (fixed) deployment id.
const DEPLOYMENT_ID: &str = "6a1f1b5e-3c55-4c7e-9d8a-ca5a77a7ab01";

/// The JSON flavour's path prefix (lower case).
const JSON_PREFIX: &str = "/autodiscover/autodiscover.json/v1.0/";

/// Answers `/autodiscover/...`; `path` is lower case.
pub async fn handle(shared: &Shared, path: &str, req: Request<Incoming>) -> Response<Body> {
    match path {
        "/autodiscover/autodiscover.xml" => pox::handle(shared, req).await,
        "/autodiscover/autodiscover.svc" => soap::handle(shared, req).await,
        _ => match path.strip_prefix(JSON_PREFIX) {
            Some(mailbox) if !mailbox.is_empty() && !mailbox.contains('/') => {
                json::handle(shared, mailbox, &req)
            }
            _ => response::status(StatusCode::NOT_FOUND),
        },
    }
}

/// `lab.local` for `ex1.lab.local`.
fn domain_of(fqdn: &str) -> &str {
    fqdn.split_once('.').map_or(fqdn, |(_, d)| d)
}

/// The mailbox server of `database` as (name, fqdn): in a DAG the server
/// holding its active copy when that is known, else this server.
fn mailbox_server(shared: &Shared, database: &str) -> (String, String) {
    if let Some(dag) = shared.databases.dag() {
        if let Located::Remote(member) = dag.locate(database) {
            if let Some(fqdn) = member.fqdn.clone() {
                return (member.name, fqdn);
            }
        }
    }
    (shared.name.clone(), shared.fqdn.clone())
}

//! Delivery into a database other than the sender's: into the local copy
//! when it is active here, else to the server with the active copy
//! (`POST /mock/dag/deliver/{db}`, authenticated by the server token;
//! `{"message": {...}, "recipients": ["alice@lab.com"], "received": <Unix
//! s>}` -> `{"delivered": n, "generation": g}`). It happens before the
//! sender is answered; a database with no mounted copy makes the delivery
//! fail (the hub transport will queue such mail instead).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{store_failed, Route};
use crate::mock::auth::token;
use crate::mock::dag::client::request;
use crate::mock::directory;
use crate::mock::http::request::{read_body, MAX_BODY};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::store::{self, NewMessage};

/// Bound on a delivery to another server: 30 s.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `POST /mock/dag/deliver/{db}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DeliverRequest {
    pub message: NewMessage,
    pub recipients: Vec<String>,
    pub received: i64,
}

/// Delivers `msg` to `recipients`, mailboxes of `database`; returns the
/// log generation written (0 without a DAG) or why it failed.
pub async fn deliver(
    shared: &Shared,
    database: &str,
    msg: &NewMessage,
    recipients: &[String],
    received: i64,
) -> Result<u64, String> {
    match shared.databases.route(database) {
        Route::Local(h) => {
            let (m, r) = (msg.clone(), recipients.to_vec());
            h.write(move |b| store::deliver(b, &m, &r, received))
                .await
                .map(|(_, g)| g)
                .map_err(|e| e.to_string())
        }
        Route::Unavailable(why) => Err(why),
        Route::Remote(member) => {
            let dag = shared
                .databases
                .dag()
                .ok_or_else(|| "no DAG to deliver through".to_string())?;
            let body = serde_json::to_vec(&DeliverRequest {
                message: msg.clone(),
                recipients: recipients.to_vec(),
                received,
            })
            .map_err(|e| e.to_string())?;
            let mut req = request(Method::POST, &format!("/mock/dag/deliver/{database}"), body);
            // The server token names a lab mailbox: the sender's, or for
            // mail from outside (a hub's delivery) the first recipient's.
            let on_behalf = if directory::lab().find(&msg.from.address).is_some() {
                msg.from.address.as_str()
            } else {
                recipients.first().map_or("", String::as_str)
            };
            if let Some(t) = token::issue(shared, on_behalf) {
                req.headers_mut().insert(token::HEADER, t);
            }
            req.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(response::JSON),
            );
            let reply = dag
                .client()
                .call(&member, req, DELIVER_TIMEOUT, 64 * 1024)
                .await
                .map_err(|e| e.to_string())?;
            if !reply.status.is_success() {
                return Err(format!(
                    "{} refused the delivery ({}): {}",
                    member.name,
                    reply.status,
                    String::from_utf8_lossy(&reply.body).trim()
                ));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
            Ok(v["generation"].as_u64().unwrap_or(0))
        }
    }
}

/// `POST /mock/dag/deliver/{db}`.
pub async fn handle(shared: &Shared, database: &str, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if token::verify(shared, req.headers()).is_none() {
        return response::status(StatusCode::UNAUTHORIZED);
    }
    let body = match read_body(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Ok(d) = serde_json::from_slice::<DeliverRequest>(&body) else {
        return response::status(StatusCode::BAD_REQUEST);
    };
    let dir = directory::lab();
    let ours = d.recipients.iter().all(|r| {
        dir.find(r)
            .is_some_and(|m| m.database.eq_ignore_ascii_case(database) && m.address == *r)
    });
    if !ours || d.recipients.is_empty() {
        return response::status(StatusCode::BAD_REQUEST);
    }
    let handle = match shared.databases.local(database) {
        Ok(h) => h,
        Err(e) => return store_failed(&e),
    };
    let n = d.recipients.len();
    let (msg, rcpts, received) = (d.message, d.recipients, d.received);
    match handle
        .write(move |b| store::deliver(b, &msg, &rcpts, received))
        .await
    {
        Ok((_, generation)) => response::with_body(
            StatusCode::OK,
            response::JSON,
            json!({"delivered": n, "generation": generation}).to_string(),
        ),
        Err(e) => store_failed(&e),
    }
}

//! Asking the DAG to change: the admin API's database calls (move-active,
//! copy add, remove, suspend, resume) go to a member's `/mock/dag/...`
//! endpoint, which coordinates the change with the others (any member can).
//! The members are tried in order (the one named by the call first) until
//! one answers; its answer, success or refusal, is the call's.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::upstream::Upstreams;

/// Largest answer read: 1 MiB.
const MAX_ANSWER: usize = 1 << 20;

/// How long a DAG change may take at most: 11 minutes (a switchover waits
/// for its target to catch up, up to 10 minutes when asked).
pub const MAX_WAIT: Duration = Duration::from_secs(660);

/// A member's answer: its status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

/// Why no member answered.
#[derive(Debug, thiserror::Error)]
#[error("no member answered {path} (tried {tried}): {last}")]
pub struct NoAnswer {
    pub path: String,
    pub tried: String,
    pub last: String,
}

/// Sends `method path` with `body` to the members of `upstreams`, those
/// named in `first` first, until one answers within `limit`.
pub async fn call(
    upstreams: &Upstreams,
    first: &[&str],
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    limit: Duration,
) -> Result<Answer, NoAnswer> {
    let mut order: Vec<usize> = first.iter().filter_map(|n| upstreams.find(n)).collect();
    for m in 0..upstreams.members().len() {
        if !order.contains(&m) {
            order.push(m);
        }
    }
    let mut tried = Vec::new();
    let mut last = String::from("no member");
    for m in order {
        let member = &upstreams.members()[m];
        tried.push(member.name.clone());
        let attempt = async {
            let mut conn = upstreams
                .connector()
                .connect::<Full<Bytes>>(member.address, member.tls.as_ref())
                .await
                .map_err(|e| crate::errors::error_chain(&e))?;
            let bytes = body.map(|b| b.to_string()).unwrap_or_default();
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::HOST, &member.fqdn)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(bytes)))
                .map_err(|e| e.to_string())?;
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let body = serde_json::from_slice(&body).unwrap_or_else(
                |_| serde_json::json!({ "error": String::from_utf8_lossy(&body).trim() }),
            );
            Ok::<_, String>(Answer { status, body })
        };
        match tokio::time::timeout(limit, attempt).await {
            // A member outside the DAG (404 for /mock/dag) cannot help;
            // another may.
            Ok(Ok(a)) if a.status == StatusCode::NOT_FOUND && not_a_dag_member(&a.body) => {
                last = format!("{}: not a member of a DAG", member.name);
            }
            Ok(Ok(a)) => return Ok(a),
            Ok(Err(why)) => last = format!("{}: {why}", member.name),
            Err(_) => last = format!("{}: no answer within {limit:?}", member.name),
        }
    }
    Err(NoAnswer {
        path: path.to_owned(),
        tried: tried.join(", "),
        last,
    })
}

fn not_a_dag_member(body: &serde_json::Value) -> bool {
    body["error"]
        .as_str()
        .is_some_and(|e| e.contains("not a member of a DAG"))
}

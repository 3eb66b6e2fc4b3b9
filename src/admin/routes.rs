//! Which admin call a request is, who may make it, and the answer.
//!
//! Access:
//! - `/healthz` and the status page's files (`/`, `/status`, `/status/*`)
//!   are open to everyone; the page reads its data through the API below.
//! - Read calls (`GET /metrics`, `GET /api/...`) are open to clients on
//!   loopback; from elsewhere (an admin listener on a non-loopback address,
//!   which needs a token) they need the bearer token too.
//! - Mutating calls always need `Authorization: Bearer <token>`: a missing or
//!   wrong token is 401 with `WWW-Authenticate: Bearer` and changes nothing;
//!   without `[admin] token_file` they are refused (403).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};

use super::context::{Admin, DrainChange};
use super::dag_calls::{self, Change};
use super::page::{Asset, Sampler};
use super::put_database;
use super::reply::{self, Reply};
use super::views;
use crate::dag::Dag;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// An admin call, from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint<'a> {
    Healthz,
    Metrics,
    Array,
    Members,
    Member(&'a str),
    /// `POST /api/members/{name}/drain` (true) or `/activate` (false).
    Drain(&'a str, bool),
    Databases,
    Database(&'a str),
    /// `/api/databases/{db}/move-active`, `/copies`, `/copies/{server}`,
    /// `/copies/{server}/suspend|resume`.
    DagChange(&'a str, Change<'a>),
    /// The status page: `GET /`, `/status` and its files under `/status/`.
    Page(Asset),
    /// `GET /api/series`: the status page's time series.
    Series,
    /// `GET /api/overview`: rates, certificates, reloads, SMTP, blocked.
    Overview,
}

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Read,
    Mutate,
}

impl<'a> Endpoint<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let e = match segments.as_slice() {
            ["healthz"] => Endpoint::Healthz,
            [""] | ["status"] => Endpoint::Page(Asset::Index),
            ["status", file] => Endpoint::Page(Asset::named(file)?),
            ["api", "series"] => Endpoint::Series,
            ["api", "overview"] => Endpoint::Overview,
            ["metrics"] => Endpoint::Metrics,
            ["api", "array"] => Endpoint::Array,
            ["api", "members"] => Endpoint::Members,
            ["api", "members", name] if !name.is_empty() => Endpoint::Member(name),
            ["api", "members", name, "drain"] if !name.is_empty() => Endpoint::Drain(name, true),
            ["api", "members", name, "activate"] if !name.is_empty() => {
                Endpoint::Drain(name, false)
            }
            ["api", "databases"] => Endpoint::Databases,
            ["api", "databases", name] if !name.is_empty() => Endpoint::Database(name),
            ["api", "databases", db, "move-active"] if !db.is_empty() => {
                Endpoint::DagChange(db, Change::MoveActive)
            }
            ["api", "databases", db, "copies"] if !db.is_empty() => {
                Endpoint::DagChange(db, Change::CopyAdd)
            }
            ["api", "databases", db, "copies", server] if !db.is_empty() && !server.is_empty() => {
                Endpoint::DagChange(db, Change::CopyRemove(server))
            }
            ["api", "databases", db, "copies", server, verb @ ("suspend" | "resume")]
                if !db.is_empty() && !server.is_empty() =>
            {
                Endpoint::DagChange(db, Change::CopySuspend(server, *verb == "suspend"))
            }
            _ => return None,
        };
        Some(e)
    }

    /// The access class of `method` on this endpoint, or the `Allow` value
    /// when the method is not taken here.
    fn access(&self, method: &Method) -> Result<Access, &'static str> {
        match (self, method) {
            (Endpoint::Healthz, &Method::GET) => Ok(Access::Open),
            (Endpoint::Healthz, _) => Err("GET"),
            (Endpoint::Page(_), &Method::GET | &Method::HEAD) => Ok(Access::Open),
            (Endpoint::Page(_), _) => Err("GET, HEAD"),
            (Endpoint::Drain(..), &Method::POST) => Ok(Access::Mutate),
            (Endpoint::Drain(..), _) => Err("POST"),
            (Endpoint::Database(_), &Method::GET) => Ok(Access::Read),
            (Endpoint::Database(_), &Method::PUT) => Ok(Access::Mutate),
            (Endpoint::Database(_), _) => Err("GET, PUT"),
            (Endpoint::DagChange(_, Change::CopyRemove(_)), &Method::DELETE) => Ok(Access::Mutate),
            (Endpoint::DagChange(_, Change::CopyRemove(_)), _) => Err("DELETE"),
            (Endpoint::DagChange(..), &Method::POST) => Ok(Access::Mutate),
            (Endpoint::DagChange(..), _) => Err("POST"),
            (_, &Method::GET) => Ok(Access::Read),
            (_, _) => Err("GET"),
        }
    }
}

/// Answers one admin request from `peer`, from the live snapshot `snap`.
pub async fn handle<B>(
    snap: Arc<Snapshot>,
    metrics: &Metrics,
    dag: &Dag,
    admin: &Admin,
    sampler: &Sampler,
    peer: SocketAddr,
    req: Request<B>,
) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let Some(endpoint) = Endpoint::parse(&path) else {
        return reply::error(StatusCode::NOT_FOUND, format!("no such admin call: {path}"));
    };
    let access = match endpoint.access(req.method()) {
        Ok(a) => a,
        Err(allow) => return reply::method_not_allowed(allow),
    };
    if let Some(refusal) = refusal(access, admin, peer, req.headers()) {
        tracing::info!(%peer, method = %req.method(), %path, status = refusal.status().as_u16(), "admin call refused");
        return refusal;
    }
    match endpoint {
        Endpoint::Healthz => reply::text(StatusCode::OK, "ok\n"),
        Endpoint::Page(asset) => asset.reply(),
        Endpoint::Series => reply::json(&sampler.series()),
        Endpoint::Overview => reply::json(&sampler.overview(&snap)),
        Endpoint::Metrics => reply::metrics(metrics.render_with(|g| snap.upstreams.export(g))),
        Endpoint::Array => {
            let mut view = views::array(&snap);
            view.cluster = admin.cluster().map(|c| c.status());
            reply::json(&view)
        }
        Endpoint::Members => reply::json(&views::members(&snap)),
        Endpoint::Member(name) => match snap.upstreams.find(name) {
            Some(m) => member_reply(&snap, m),
            None => unknown_member(name),
        },
        Endpoint::Drain(name, drained) => {
            let Some(m) = snap.upstreams.find(name) else {
                return unknown_member(name);
            };
            let member = snap.upstreams.members()[m].name.clone();
            match admin.set_drained(&snap.upstreams, &member, drained).await {
                Ok(change) => {
                    tracing::info!(%peer, %member, changed = change == DrainChange::Changed,
                        "admin: member {}", if drained { "drained" } else { "activated" });
                    member_reply(&snap, m)
                }
                Err(e) => {
                    let text = crate::errors::error_chain(&e);
                    tracing::error!(%peer, %member, "admin: drain state not changed: {text}");
                    reply::error(e.status(), text)
                }
            }
        }
        Endpoint::Databases => reply::json(&views::databases(&snap, &dag.map())),
        Endpoint::Database(name) if req.method() == Method::GET => {
            match views::databases(&snap, &dag.map())
                .into_iter()
                .find(|d| d.name.eq_ignore_ascii_case(name))
            {
                Some(d) => reply::json(&d),
                None => reply::error(
                    StatusCode::NOT_FOUND,
                    format!("no database named \"{name}\""),
                ),
            }
        }
        Endpoint::Database(name) => {
            let name = name.to_owned();
            put_database::put(
                &snap.cfg,
                admin.cluster().map(|c| &**c),
                &name,
                req.into_body(),
            )
            .await
        }
        Endpoint::DagChange(db, change) => {
            dag_calls::handle(&snap, dag, db, change, req.into_body()).await
        }
    }
}

/// The answer refusing a call its caller may not make; `None` when the call
/// may go ahead.
fn refusal(
    access: Access,
    admin: &Admin,
    peer: SocketAddr,
    headers: &http::HeaderMap,
) -> Option<Reply> {
    let local = peer.ip().to_canonical().is_loopback();
    match access {
        Access::Open => None,
        Access::Read if local => None,
        _ if admin.authorized(headers) => None,
        Access::Mutate if !admin.has_token() => Some(reply::error(
            StatusCode::FORBIDDEN,
            "admin changes are disabled: set [admin] token_file to a file holding a bearer token",
        )),
        Access::Read if !admin.has_token() => Some(reply::error(
            StatusCode::FORBIDDEN,
            "the admin API answers loopback clients only",
        )),
        _ => Some(reply::unauthorized()),
    }
}

fn member_reply(snap: &Snapshot, m: usize) -> Reply {
    match views::member(snap, m) {
        Some(view) => reply::json(&view),
        None => reply::error(StatusCode::NOT_FOUND, "no such member"),
    }
}

fn unknown_member(name: &str) -> Reply {
    reply::error(StatusCode::NOT_FOUND, format!("no member named \"{name}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::state::Registry;
    use http_body_util::{BodyExt, Full};

    struct Fixture {
        _dir: tempfile::TempDir,
        snap: Arc<Snapshot>,
        metrics: Metrics,
        admin: Admin,
        sampler: Sampler,
    }

    fn fixture(admin_section: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        std::fs::write(dir.path().join("admin.token"), "s3cret\n").unwrap();
        let text = format!(
            "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
             [listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [tls]\ncert = \"bundle.pem\"\n{admin_section}\n\
             [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n\
             [[member]]\nname = \"EX2\"\naddress = \"127.0.0.1:9002\"\n\
             [[database]]\nname = \"DB01\"\n"
        );
        let path = dir.path().join("casarray.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = Arc::new(crate::config::load(&path).unwrap());
        let metrics = Metrics::new().unwrap();
        let snap =
            Arc::new(Snapshot::build(Arc::clone(&cfg), &Registry::new(), &metrics, None).unwrap());
        let admin = Admin::open(&cfg).unwrap();
        admin.apply(&snap.upstreams);
        Fixture {
            _dir: dir,
            snap,
            metrics,
            admin,
            sampler: Sampler::default(),
        }
    }

    const LOCAL: &str = "127.0.0.1:50000";
    const REMOTE: &str = "192.0.2.7:50000";
    const TOKEN: &str = "Bearer s3cret";

    async fn call(
        f: &Fixture,
        peer: &str,
        method: &str,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = b.header(http::header::AUTHORIZATION, a);
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        let r = handle(
            Arc::clone(&f.snap),
            &f.metrics,
            &Dag::default(),
            &f.admin,
            &f.sampler,
            peer.parse().unwrap(),
            req,
        )
        .await;
        let (parts, body) = r.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            Endpoint::parse("/api/members/EX1/drain"),
            Some(Endpoint::Drain("EX1", true))
        );
        assert_eq!(
            Endpoint::parse("/api/members/EX1/activate"),
            Some(Endpoint::Drain("EX1", false))
        );
        assert_eq!(
            Endpoint::parse("/api/members/EX1"),
            Some(Endpoint::Member("EX1"))
        );
        assert_eq!(
            Endpoint::parse("/api/databases/DB01"),
            Some(Endpoint::Database("DB01"))
        );
        assert_eq!(Endpoint::parse("/"), Some(Endpoint::Page(Asset::Index)));
        assert_eq!(
            Endpoint::parse("/status/app.js"),
            Some(Endpoint::Page(Asset::Script))
        );
        for bad in [
            "",
            "//",
            "/status/",
            "/status/nothing.js",
            "/status/app.js/x",
            "/api",
            "/api/members/",
            "/api/members//drain",
            "/api/members/EX1/stop",
            "/metrics/x",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn reads_are_open_on_loopback() {
        let f = fixture("[admin]\ntoken_file = \"admin.token\"");
        for path in [
            "/healthz",
            "/metrics",
            "/api/array",
            "/api/members",
            "/api/members/ex1",
            "/api/databases",
            "/api/databases/db01",
        ] {
            let (status, _, body) = call(&f, LOCAL, "GET", path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (_, _, body) = call(&f, LOCAL, "GET", "/api/members", None).await;
        let v = json(&body);
        assert_eq!(v[0]["name"], "EX1");
        assert_eq!(v[0]["state"], "active");
        assert_eq!(v[0]["in_flight"], 0);
        assert_eq!(v[1]["services"]["owa"], true);
        let (_, _, body) = call(&f, LOCAL, "GET", "/api/array", None).await;
        assert_eq!(json(&body)["services"][0], "owa");
        assert_eq!(json(&body)["public_port"], 443);
    }

    #[tokio::test]
    async fn reads_from_elsewhere_need_the_token() {
        let f = fixture("[admin]\ntoken_file = \"admin.token\"");
        let (status, headers, _) = call(&f, REMOTE, "GET", "/api/members", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key(http::header::WWW_AUTHENTICATE));
        let (status, _, _) = call(&f, REMOTE, "GET", "/metrics", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&f, REMOTE, "GET", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn drain_needs_the_token_and_changes_nothing_without_it() {
        let f = fixture("[admin]\ntoken_file = \"admin.token\"");
        for auth in [None, Some("Bearer wrong"), Some("Basic czNjcmV0")] {
            let (status, headers, _) =
                call(&f, LOCAL, "POST", "/api/members/EX1/drain", auth).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert!(headers[http::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
            assert!(!f.snap.upstreams.members()[0].state.is_draining());
        }
        let (status, _, body) =
            call(&f, LOCAL, "POST", "/api/members/ex1/drain", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(json(&body)["state"], "draining");
        assert_eq!(json(&body)["name"], "EX1");
        assert!(f.snap.upstreams.members()[0].state.is_draining());
        assert!(f.admin.current().is_drained("EX1"));
        let (_, _, metrics) = call(&f, LOCAL, "GET", "/metrics", None).await;
        assert!(
            metrics.contains("casarray_member_draining{member=\"EX1\"} 1"),
            "{metrics}"
        );

        let (status, _, _) = call(&f, LOCAL, "POST", "/api/members/EX1/activate", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(f.snap.upstreams.members()[0].state.is_draining());
        let (status, _, body) =
            call(&f, LOCAL, "POST", "/api/members/EX1/activate", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["state"], "active");
        assert!(!f.snap.upstreams.members()[0].state.is_draining());
    }

    #[tokio::test]
    async fn without_a_token_file_mutations_are_forbidden() {
        let f = fixture("");
        let (status, _, body) =
            call(&f, LOCAL, "POST", "/api/members/EX1/drain", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("token_file"), "{body}");
        let (status, _, _) = call(&f, LOCAL, "PUT", "/api/databases/DB01", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!f.snap.upstreams.members()[0].state.is_draining());
    }

    #[tokio::test]
    async fn unknown_things_and_wrong_methods() {
        let f = fixture("[admin]\ntoken_file = \"admin.token\"");
        let (status, _, _) = call(&f, LOCAL, "POST", "/api/members/EX9/drain", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&f, LOCAL, "GET", "/api/members/EX9", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&f, LOCAL, "GET", "/nothing", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, headers, _) = call(&f, LOCAL, "GET", "/api/members/EX1/drain", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[http::header::ALLOW], "POST");
        let (status, headers, _) =
            call(&f, LOCAL, "DELETE", "/api/databases/DB01", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[http::header::ALLOW], "GET, PUT");
        let (status, _, _) = call(&f, LOCAL, "POST", "/metrics", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn the_status_page_is_open_and_its_data_is_a_read_call() {
        let f = fixture("[admin]\ntoken_file = \"admin.token\"");
        for (path, kind) in [
            ("/", "text/html"),
            ("/status", "text/html"),
            ("/status/app.js", "text/javascript"),
            ("/status/style.css", "text/css"),
        ] {
            for peer in [LOCAL, REMOTE] {
                let (status, headers, body) = call(&f, peer, "GET", path, None).await;
                assert_eq!(status, StatusCode::OK, "{path} from {peer}");
                assert!(headers[http::header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with(kind));
                let csp = headers[http::header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap();
                assert!(csp.contains("script-src 'self'"), "{csp}");
                assert!(!body.is_empty());
            }
        }
        let (status, _, _) = call(&f, LOCAL, "HEAD", "/", None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, headers, _) = call(&f, LOCAL, "POST", "/", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[http::header::ALLOW], "GET, HEAD");

        for path in ["/api/series", "/api/overview"] {
            let (status, _, _) = call(&f, REMOTE, "GET", path, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            let (status, _, _) = call(&f, REMOTE, "GET", path, Some(TOKEN)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        f.sampler.sample(&f.metrics, &f.snap);
        f.metrics
            .requests
            .with_label_values(&["owa", "EX1", "503"])
            .inc();
        f.sampler.sample(&f.metrics, &f.snap);
        let (status, headers, body) = call(&f, LOCAL, "GET", "/api/series", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
        let v = json(&body);
        assert_eq!(v["interval_ms"], 1000);
        assert_eq!(v["capacity"], 600);
        assert_eq!(v["at_unix_ms"].as_array().unwrap().len(), 1);
        assert!(v["requests_per_s"][0].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["requests_per_s"][0], v["errors_per_s"][0]);
        assert_eq!(v["members"]["EX2"][0], 0.0);
        let (status, _, body) = call(&f, LOCAL, "GET", "/api/overview", None).await;
        assert_eq!(status, StatusCode::OK);
        let v = json(&body);
        assert_eq!(v["reloads"]["success"], 0);
        assert_eq!(v["reloads"]["last"], serde_json::Value::Null);
        assert!(v["rates"]["members"]["EX1"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["smtp"], serde_json::json!([]));
    }
}

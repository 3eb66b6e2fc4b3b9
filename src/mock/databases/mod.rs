//! Where a server finds a mailbox database: without a DAG, every database
//! is a file of the store directory the lab's servers share; in a DAG,
//! the database's active copy is on one server, here or elsewhere (see
//! `dag`). Handlers get a [`DbHandle`] on a local copy that takes writes,
//! or learn that the request must go to another server, or that the
//! database has no mounted copy (`503` with `Retry-After`).

pub mod deliver;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};
use rusqlite::Connection;

use crate::mock::dag::copy::LocalCopy;
use crate::mock::dag::definition::Member;
use crate::mock::dag::{Dag, Located};
use crate::mock::http::response::{self, Body};
use crate::mock::store::{Batch, Store, StoreError};
use crate::mock::users::LAB_DATABASES;

/// What `Retry-After` says while a database has no mounted copy: 5 s.
pub const RETRY_AFTER_SECS: u32 = 5;

/// This server's databases.
#[derive(Debug)]
pub enum Databases {
    /// Every database in a store directory shared by the lab's servers.
    Shared(BTreeMap<String, Store>),
    /// A DAG member's copies.
    Dag(Arc<Dag>),
}

/// A local database that takes reads and writes.
#[derive(Debug, Clone)]
pub enum DbHandle {
    Shared(Store),
    Dag(Arc<Dag>, Arc<LocalCopy>),
}

/// Where a database is, for one request.
#[derive(Debug, Clone)]
pub enum Route {
    Local(DbHandle),
    /// The active copy is on this other server.
    Remote(Member),
    /// No mounted copy now; the reason.
    Unavailable(String),
}

impl Databases {
    /// Opens (creating and seeding) every lab database under `dir`, shared
    /// with other servers. Blocking.
    pub fn open_shared(dir: &Path) -> Result<Databases, StoreError> {
        let mut stores = BTreeMap::new();
        for (name, _) in LAB_DATABASES {
            stores.insert(name.to_ascii_uppercase(), Store::open_shared(dir, name)?);
        }
        Ok(Databases::Shared(stores))
    }

    /// The DAG, when this server is a member of one.
    pub fn dag(&self) -> Option<&Arc<Dag>> {
        match self {
            Databases::Dag(dag) => Some(dag),
            Databases::Shared(_) => None,
        }
    }

    /// Where `database` is.
    pub fn route(&self, database: &str) -> Route {
        match self {
            Databases::Shared(stores) => match stores.get(&database.to_ascii_uppercase()) {
                Some(s) => Route::Local(DbHandle::Shared(s.clone())),
                None => Route::Unavailable(format!("no database {database}")),
            },
            Databases::Dag(dag) => match dag.locate(database) {
                Located::Local(copy) => Route::Local(DbHandle::Dag(Arc::clone(dag), copy)),
                Located::Remote(member) => Route::Remote(member),
                Located::Unavailable(why) => Route::Unavailable(why),
            },
        }
    }

    /// `database` when it is here and takes writes.
    pub fn local(&self, database: &str) -> Result<DbHandle, StoreError> {
        match self.route(database) {
            Route::Local(h) => Ok(h),
            Route::Remote(m) => Err(StoreError::Fenced(format!(
                "{database} is active on {}, not here",
                m.name
            ))),
            Route::Unavailable(why) => Err(StoreError::Fenced(why)),
        }
    }
}

impl DbHandle {
    /// The database's name.
    pub fn database(&self) -> &str {
        match self {
            DbHandle::Shared(s) => s.database(),
            DbHandle::Dag(_, c) => &c.database,
        }
    }

    /// Reads with `f` on the blocking pool; a DAG copy must still be the
    /// mounted active copy.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        match self {
            DbHandle::Shared(store) => store.run(move |conn| f(conn)).await,
            DbHandle::Dag(dag, copy) => {
                if copy.mounted().is_none() || !dag.has_quorum() {
                    return Err(StoreError::Fenced(format!(
                        "{} is no longer mounted here",
                        copy.database
                    )));
                }
                copy.store.run(move |conn| f(conn)).await
            }
        }
    }

    /// Writes with `f` (one transaction; in a DAG one fenced log
    /// generation); returns `f`'s result and the generation written (0
    /// without a DAG or when nothing changed).
    pub async fn write<R, F>(&self, f: F) -> Result<(R, u64), StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        match self {
            DbHandle::Shared(store) => {
                let r = store
                    .run(move |conn| crate::mock::store::batch::write(conn, f, |_, _| Ok(())))
                    .await?;
                Ok((r, 0))
            }
            DbHandle::Dag(dag, copy) => dag.write(copy, f).await,
        }
    }
}

/// `503 Service Unavailable` with `Retry-After` and the reason.
pub fn unavailable(reason: &str) -> Response<Body> {
    let mut resp = response::with_body(
        StatusCode::SERVICE_UNAVAILABLE,
        response::TEXT,
        format!("503 Service Unavailable: {reason}\r\n"),
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(RETRY_AFTER_SECS),
    );
    resp
}

/// The answer for a failed store call: `503` when the database is not
/// mounted here (any more), `500` otherwise (logged).
pub fn store_failed(e: &StoreError) -> Response<Body> {
    match e {
        StoreError::Fenced(why) => unavailable(why),
        other => {
            tracing::error!(error = %other, "mail store failed");
            response::status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// `X-Mock-Log-Generation: <database>:<generation>` for an answer whose
/// change was written as that log generation (DAG only).
pub fn generation_header(resp: &mut Response<Body>, database: &str, generation: u64) {
    if generation == 0 {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{database}:{generation}")) {
        resp.headers_mut().insert("x-mock-log-generation", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_databases_are_local() {
        let dir = tempfile::tempdir().unwrap();
        let dbs = Databases::open_shared(dir.path()).unwrap();
        assert!(dbs.dag().is_none());
        let h = dbs.local("db02").unwrap();
        assert_eq!(h.database(), "DB02");
        let n = h
            .read(|conn| Ok(crate::mock::store::list_items(conn, "bob@lab.com", "inbox")?.len()))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(matches!(dbs.route("DB09"), Route::Unavailable(_)));
        let resp = unavailable("DB02 is moving");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "5");
        let resp = store_failed(&StoreError::Fenced("x".into()));
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

//! EWS (being built).
use super::response::{self, Body};
use super::server::Shared;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
pub async fn handle(_shared: &Shared, _path: &str, _req: Request<Incoming>) -> Response<Body> {
    response::status(StatusCode::NOT_IMPLEMENTED)
}

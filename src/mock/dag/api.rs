//! Errors of the `/mock/dag` mutations, answered as JSON
//! `{"error": "<reason>"}` with an HTTP status.

use http::{Response, StatusCode};

use crate::mock::http::response::{self, Body};

/// A refused or failed mutation: the HTTP status and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

/// An [`ApiError`].
pub fn err(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response::with_body(status, response::JSON, value.to_string())
}

impl ApiError {
    /// The error as an answer.
    pub fn response(&self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json(status, &serde_json::json!({ "error": self.message }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json() {
        let resp = err(409, "no copy").response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(
            err(1000, "x").response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

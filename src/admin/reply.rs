//! The admin API's answers: JSON documents, JSON errors, plain text.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::api::ErrorView;

/// An admin API answer.
pub type Reply = Response<Full<Bytes>>;

/// 200 with a JSON document.
pub fn json<T: Serialize + ?Sized>(v: &T) -> Reply {
    json_status(StatusCode::OK, v)
}

/// `status` with a JSON document.
pub fn json_status<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Reply {
    // The API's types and serde_json's values always serialize.
    let mut body = serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned());
    body.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `status` with `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    json_status(
        status,
        &ErrorView {
            error: message.into(),
        },
    )
}

/// 401 asking for the bearer token.
pub fn unauthorized() -> Reply {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong token: send Authorization: Bearer <the token of [admin] token_file>",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"casarray admin\""),
    );
    r
}

/// 405 naming the methods the path takes.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here (allowed: {allow})"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// `status` with a plain-text body.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The Prometheus text exposition.
pub fn metrics(body: String) -> Reply {
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_the_challenge() {
        let r = unauthorized();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn method_not_allowed_names_the_methods() {
        let r = method_not_allowed("POST");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
    }
}

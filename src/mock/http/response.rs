//! The response body type of the mock server and builders for the usual
//! answers.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Every response body: whole (`Full`) or streamed (Outlook Anywhere).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// `text/html; charset=utf-8`.
pub const HTML: &str = "text/html; charset=utf-8";
/// `text/xml; charset=utf-8`.
pub const XML: &str = "text/xml; charset=utf-8";
/// `text/plain; charset=utf-8`.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `application/json`.
pub const JSON: &str = "application/json";

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with `status`, a content type and a whole body.
pub fn with_body(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        resp.headers_mut().insert(CONTENT_TYPE, value);
    }
    resp
}

/// A `302 Found` to `location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = with_body(StatusCode::FOUND, HTML, Bytes::new());
    if let Ok(value) = location.parse() {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp
}

/// A short plain-text answer: `404 Not Found`, `405`, ...
pub fn status(status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    with_body(status, TEXT, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builders_set_status_type_and_body() {
        let resp = redirect("https://ex1.lab.local/owa/");
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(resp.headers()[LOCATION], "https://ex1.lab.local/owa/");
        let resp = status(StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[CONTENT_TYPE], TEXT);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"404 Not Found\r\n");
    }
}

//! The page's files, embedded in the binary (no CDN, no build step), and
//! the headers they are served with.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::admin::reply::Reply;

/// What the page may load: scripts, styles, images and `fetch` from the
/// admin listener itself only; no inline script or style, no plugins, no
/// framing, no form posted anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `GET /` and `GET /status`: the HTML page.
    Index,
    /// `GET /status/app.js`.
    Script,
    /// `GET /status/style.css`.
    Style,
    /// `GET /status/icon.svg`.
    Icon,
}

impl Asset {
    /// The file under `/status/` named `name`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "app.js" => Some(Asset::Script),
            "style.css" => Some(Asset::Style),
            "icon.svg" => Some(Asset::Icon),
            _ => None,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Asset::Index => include_str!("static/index.html"),
            Asset::Script => include_str!("static/app.js"),
            Asset::Style => include_str!("static/style.css"),
            Asset::Icon => include_str!("static/icon.svg"),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Asset::Index => "text/html; charset=utf-8",
            Asset::Script => "text/javascript; charset=utf-8",
            Asset::Style => "text/css; charset=utf-8",
            Asset::Icon => "image/svg+xml",
        }
    }

    /// 200 with the file, its type, the CSP and `Cache-Control: no-cache`
    /// (a browser asks again, so a new binary's page is seen at once).
    pub fn reply(self) -> Reply {
        let mut r = Response::new(Full::new(Bytes::from_static(self.body().as_bytes())));
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Asset; 4] = [Asset::Index, Asset::Script, Asset::Style, Asset::Icon];

    #[test]
    fn every_file_carries_the_policy_and_its_type() {
        for a in ALL {
            let r = a.reply();
            assert_eq!(r.status(), StatusCode::OK);
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "connect-src 'self'",
            ] {
                assert!(csp.contains(directive), "{a:?}: {csp}");
            }
            assert!(!csp.contains("unsafe"), "{csp}");
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(!a.body().is_empty());
        }
        assert_eq!(
            Asset::Index.reply().headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(Asset::named("app.js"), Some(Asset::Script));
        assert_eq!(Asset::named("../app.js"), None);
        assert_eq!(Asset::named("index.html"), None);
    }

    /// The policy forbids inline script and style: the HTML must need
    /// neither, and the script must not write markup from strings.
    #[test]
    fn the_page_needs_no_weaker_policy() {
        let html = Asset::Index.body().to_ascii_lowercase();
        assert!(!html.contains("style="), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        for tag in html.split('<').skip(1) {
            let inside = tag.split('>').next().unwrap_or_default();
            for attr in inside.split_whitespace().skip(1) {
                assert!(!attr.starts_with("on"), "inline event handler: <{inside}>");
            }
        }
        assert!(!html.contains("javascript:"));
        let mut rest = html.as_str();
        while let Some(i) = rest.find("<script") {
            let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
            assert!(
                rest[i..tag_end].contains("src=\"/status/app.js\""),
                "inline script"
            );
            assert!(
                rest[tag_end..].starts_with("></script>"),
                "script with a body"
            );
            rest = &rest[tag_end..];
        }
        for link in ["/status/app.js", "/status/style.css", "/status/icon.svg"] {
            assert!(html.contains(link), "{link} not linked");
        }
        let js = Asset::Script.body();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "indexedDB",
            ".style.",
            "setAttribute('style'",
            "setAttribute(\"style\"",
        ] {
            assert!(!js.contains(banned), "app.js uses {banned}");
        }
    }
}

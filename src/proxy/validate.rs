//! What a request must look like before the array routes it: one Host,
//! naming the array; a path without `..` segments, NUL or broken
//! percent-escapes. hyper has already refused what HTTP/1.1 itself forbids
//! (bad request lines, conflicting lengths, bad chunks, oversized heads).

use http::header::{self, HeaderValue};
use http::{Request, StatusCode};

/// Why a request is refused, with the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub why: &'static str,
}

const fn bad(why: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        why,
    }
}

/// The Host the request is for (the `Host` header, or the target's
/// authority on HTTP/2 and in absolute-form), once every name the request
/// gives for its host is one `accepts` takes.
pub fn host<B>(req: &Request<B>, accepts: impl Fn(&str) -> bool) -> Result<HeaderValue, Refusal> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("400 Bad Request: more than one Host header\n"));
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    let host_text = match host {
        Some(h) => Some(
            h.to_str()
                .map_err(|_| bad("400 Bad Request: bad Host header\n"))?,
        ),
        None => None,
    };
    if host_text.is_none() && authority.is_none() {
        return Err(bad("400 Bad Request: no Host\n"));
    }
    for name in [host_text, authority].into_iter().flatten() {
        if name.is_empty() || name.contains('@') {
            return Err(bad("400 Bad Request: bad Host\n"));
        }
        if !accepts(name) {
            return Err(Refusal {
                status: StatusCode::MISDIRECTED_REQUEST,
                why: "421 Misdirected Request: this array does not serve that host name\n",
            });
        }
    }
    match host {
        Some(h) => Ok(h.clone()),
        None => HeaderValue::from_str(authority.unwrap_or_default())
            .map_err(|_| bad("400 Bad Request: bad Host\n")),
    }
}

/// A path the array forwards: no `..` segment (raw or percent-encoded,
/// between `/` or `\`), no NUL, every `%` followed by two hex digits.
pub fn path(path: &str) -> Result<(), Refusal> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        // Nothing escaped (the common case): check in place, no copy.
        return check_decoded(bytes);
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(bad("400 Bad Request: bad percent-encoding in the path\n"));
            };
            decoded.push(hi << 4 | lo);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    check_decoded(&decoded)
}

fn check_decoded(decoded: &[u8]) -> Result<(), Refusal> {
    if decoded.contains(&0) {
        return Err(bad("400 Bad Request: NUL in the path\n"));
    }
    if decoded
        .split(|&b| b == b'/' || b == b'\\')
        .any(|segment| segment == b"..")
    {
        return Err(bad("400 Bad Request: `..` in the path\n"));
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "/owa/",
            "/owa/a%20b",
            "/EWS/Exchange.asmx",
            "/owa/...",
            "/owa/..x",
            "/owa/%2Fx",
        ] {
            assert_eq!(path(ok), Ok(()), "{ok}");
        }
        for refused in [
            "/owa/../ecp/",
            "/owa/..",
            "/owa/%2e%2e/ecp/",
            "/owa/.%2E/ecp/",
            "/owa/..%2fecp/",
            "/owa/..%5cecp/",
            "/owa/..\\ecp/",
            "/owa/%00",
            "/owa/%zz",
            "/owa/%4",
            "/owa/%",
            "/owa/%%30",
        ] {
            assert_eq!(
                path(refused).map_err(|r| r.status),
                Err(StatusCode::BAD_REQUEST),
                "{refused}"
            );
        }
    }

    fn req(uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn hosts() {
        let ok = |h: &str| h.starts_with("mail.lab.com");
        assert_eq!(
            host(&req("/owa/", &["mail.lab.com"]), ok).unwrap(),
            "mail.lab.com"
        );
        assert_eq!(
            host(&req("https://mail.lab.com/owa/", &[]), ok).unwrap(),
            "mail.lab.com"
        );
        let status = |r: Request<()>| host(&r, ok).map_err(|e| e.status).err();
        assert_eq!(status(req("/owa/", &[])), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(req("/owa/", &["mail.lab.com", "mail.lab.com"])),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(req("/owa/", &["evil.com"])),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            status(req("https://evil.com/owa/", &["mail.lab.com"])),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            status(req("/owa/", &["mail.lab.com@evil.com"])),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}

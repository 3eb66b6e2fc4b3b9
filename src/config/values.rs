//! Checks of single values, without positions: names, addresses, affinity
//! rules, prefixes. Each returns what is wrong as a sentence; the validator
//! adds where.

use std::net::{SocketAddr, ToSocketAddrs};

use super::model::{Affinity, HealthKind};

/// A host name as DNS allows it: dot-separated labels of letters, digits and
/// inner hyphens, each 1 to 63 characters, 253 in all, no trailing dot.
pub(crate) fn dns_name(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("\"{s}\" is not a valid DNS name: {why}"));
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() {
            return bad("empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(())
}

/// A TLS server name (`tls_server_name`): a DNS name, or an IP address
/// for a member whose certificate names its address.
pub(crate) fn tls_server_name(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    dns_name(s).map_err(|e| format!("{e} (nor an IP address)"))
}

/// A member name (`EX1`): it appears in admin URLs and metric labels, so
/// letters, digits, `-`, `_` and `.`, at most 64 characters.
pub(crate) fn member_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("member name \"{s}\" must be 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "member name \"{s}\" may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// A free-form object name (array, database): not empty, no surrounding
/// spaces, no control characters, no `/` (it appears in admin URLs), at
/// most 64 characters as in Active Directory.
pub(crate) fn object_name(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if s.trim() != s {
        return Err(format!("{what} \"{s}\" has leading or trailing spaces"));
    }
    if s.chars().count() > 64 {
        return Err(format!("{what} \"{s}\" is longer than 64 characters"));
    }
    if s.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!("{what} \"{s}\" holds a control character or '/'"));
    }
    Ok(())
}

/// A service name: lowercase letters, digits, `-` and `_` (it appears in
/// metric labels and in the admin API's JSON keys).
pub(crate) fn service_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "service name \"{s}\" must be lowercase letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// A listen address: an IP and a port, `0.0.0.0:443` or `[::]:443`.
pub(crate) fn listen_address(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("\"{s}\" is not a listen address: expected IP:PORT, like 0.0.0.0:443 or [::]:443")
    })
}

/// A TCP port clients connect to: 1 to 65535.
pub(crate) fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{n} is not a port: expected 1 to 65535"))
}

/// A member address: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`, a host name
/// resolved now (the first address wins).
pub(crate) fn member_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let shape = || {
        format!("\"{s}\" is not host:port (like 127.0.0.1:9001, [::1]:9001 or ex1.lab.local:443)")
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(shape)?;
    if port.parse::<u16>().is_err() || host.contains(':') || host.is_empty() {
        return Err(shape());
    }
    if host.starts_with('[') {
        return Err(format!("\"{s}\": \"{host}\" is not an IPv6 address"));
    }
    dns_name(host)?;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{s}\": {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("cannot resolve \"{s}\": no address"))
}

/// An affinity rule: `none`, `cookie`, `source-ip` or `header:<name>`
/// (the header name is kept lowercase).
pub(crate) fn affinity(s: &str) -> Result<Affinity, String> {
    match s {
        "none" => Ok(Affinity::None),
        "cookie" => Ok(Affinity::Cookie),
        "source-ip" => Ok(Affinity::SourceIp),
        _ => {
            let Some(name) = s.strip_prefix("header:") else {
                return Err(format!(
                    "unknown affinity \"{s}\" (expected none, cookie, source-ip or header:<name>)"
                ));
            };
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!(
                    "affinity \"{s}\": \"{name}\" is not a valid header name"
                ));
            }
            Ok(Affinity::Header(lower))
        }
    }
}

/// A service prefix: starts with `/`, names at least one segment; a trailing
/// `/` is dropped.
pub(crate) fn prefix(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("prefix \"{s}\" must start with '/'"));
    }
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(format!(
            "prefix \"{s}\" must name a path, like /owa (\"/\" is the array's own)"
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(format!(
            "prefix \"{s}\" holds a space, control character, '?' or '#'"
        ));
    }
    Ok(trimmed.to_string())
}

/// A health-check kind: `http` or `tcp`.
pub(crate) fn health_kind(s: &str) -> Result<HealthKind, String> {
    match s {
        "http" => Ok(HealthKind::Http),
        "tcp" => Ok(HealthKind::Tcp),
        _ => Err(format!(
            "unknown health kind \"{s}\" (expected http or tcp)"
        )),
    }
}

/// The SMTP health-check kind: `ehlo` or `tcp`.
pub(crate) fn smtp_health(s: &str) -> Result<HealthKind, String> {
    match s {
        "ehlo" => Ok(HealthKind::Ehlo),
        "tcp" => Ok(HealthKind::Tcp),
        _ => Err(format!(
            "unknown SMTP health check \"{s}\" (expected ehlo or tcp)"
        )),
    }
}

/// A health-check path: starts with `/`, no spaces.
pub(crate) fn health_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("health path \"{s}\" must start with '/'"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "health path \"{s}\" holds a space or control character"
        ));
    }
    Ok(())
}

/// A content type to rewrite: `type/subtype`, kept lowercase.
pub(crate) fn content_type(s: &str) -> Result<String, String> {
    let lower = s.trim().to_ascii_lowercase();
    let ok = lower.split_once('/').is_some_and(|(t, sub)| {
        let token = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(t) && token(sub)
    });
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "content type \"{s}\" is not type/subtype (like text/xml)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for good in ["mail.lab.com", "ex1", "a-b.c", "x1.lab.local"] {
            assert_eq!(dns_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b.c",
            "mail.lab.com.",
            "*.lab.com",
        ] {
            assert!(dns_name(bad).is_err(), "{bad:?}");
        }
        assert!(dns_name(&"a".repeat(64)).is_err());
        assert!(tls_server_name("ex1.lab.local").is_ok());
        assert!(tls_server_name("10.0.0.5").is_ok());
        assert!(tls_server_name("::1").is_ok());
        assert!(tls_server_name("ex1_lab").is_err());
        assert_eq!(
            dns_name("a b").unwrap_err(),
            "\"a b\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed"
        );
    }

    #[test]
    fn names() {
        assert!(member_name("EX1").is_ok());
        assert!(member_name("ex_1.lab").is_ok());
        assert!(member_name("EX 1").is_err());
        assert!(member_name("").is_err());
        assert!(object_name("database name", "Mailbox Database 01").is_ok());
        assert!(object_name("database name", " DB").is_err());
        assert!(object_name("database name", "a/b").is_err());
        assert!(service_name("owa").is_ok());
        assert!(service_name("OWA").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            member_address("127.0.0.1:9001"),
            Ok("127.0.0.1:9001".parse().unwrap())
        );
        assert_eq!(
            member_address("[::1]:9001"),
            Ok("[::1]:9001".parse().unwrap())
        );
        let local = member_address("localhost:9001").unwrap();
        assert!(local.ip().is_loopback());
        assert_eq!(local.port(), 9001);
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "::1:9001",
            "[::1",
            ":80",
            "a b:80",
            "[zz]:80",
        ] {
            assert!(member_address(bad).is_err(), "{bad:?}");
        }
        assert!(listen_address("0.0.0.0:443").is_ok());
        assert!(listen_address("[::]:443").is_ok());
        assert!(listen_address("localhost:443").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port(1), Ok(1));
        assert_eq!(port(8443), Ok(8443));
        assert_eq!(port(65535), Ok(65535));
        for bad in [0, -1, 65536, i64::MAX, i64::MIN] {
            assert_eq!(
                port(bad),
                Err(format!("{bad} is not a port: expected 1 to 65535"))
            );
        }
    }

    #[test]
    fn affinities() {
        assert_eq!(affinity("none"), Ok(Affinity::None));
        assert_eq!(affinity("cookie"), Ok(Affinity::Cookie));
        assert_eq!(affinity("source-ip"), Ok(Affinity::SourceIp));
        assert_eq!(
            affinity("header:Authorization"),
            Ok(Affinity::Header("authorization".into()))
        );
        assert!(affinity("header:").is_err());
        assert!(affinity("header:a b").is_err());
        assert!(affinity("sticky").is_err());
    }

    #[test]
    fn prefixes_and_paths() {
        assert_eq!(prefix("/owa/"), Ok("/owa".into()));
        assert_eq!(prefix("/EWS"), Ok("/EWS".into()));
        assert!(prefix("owa").is_err());
        assert!(prefix("/").is_err());
        assert!(prefix("/o wa").is_err());
        assert_eq!(health_kind("http"), Ok(HealthKind::Http));
        assert_eq!(health_kind("tcp"), Ok(HealthKind::Tcp));
        assert!(health_kind("TCP").is_err());
        assert!(health_kind("ehlo").is_err(), "ehlo is for [smtp] only");
        assert_eq!(smtp_health("ehlo"), Ok(HealthKind::Ehlo));
        assert_eq!(smtp_health("tcp"), Ok(HealthKind::Tcp));
        assert!(smtp_health("http").is_err());
        assert!(health_path("/owa/healthcheck.htm").is_ok());
        assert!(health_path("owa").is_err());
        assert_eq!(content_type("Text/XML"), Ok("text/xml".into()));
        assert!(content_type("xml").is_err());
    }
}

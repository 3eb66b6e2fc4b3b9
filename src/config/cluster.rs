//! `[cluster]`: several instances of one array sharing their state (drain
//! state, TLS session ticket keys) through etcd.
//! The model and its validation; the cluster itself is `crate::cluster`.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::model::ArrayConfig;
use super::raw::{RawCluster, S};
use super::validate::Ctx;

/// Default `ticket_rotation`: 6 hours.
pub const DEFAULT_TICKET_ROTATION: Duration = Duration::from_secs(6 * 3600);
/// Default `sync_timeout`: 10 s.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `request_timeout`: 3 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `etcd`: the etcd endpoints, `http://HOST:PORT` or `https://HOST:PORT`
    /// (at least one; every member of the etcd cluster is best).
    pub endpoints: Vec<String>,
    /// `prefix`: every key this array writes starts with it. Default
    /// `/casarray/<array fqdn>`; starts with `/`, no trailing `/`.
    pub prefix: String,
    /// `instance`: this instance's name in the cluster. `None`: the host
    /// name and the admin port (`host-a:9090`).
    pub instance: Option<String>,
    /// `ca`: the CA bundle (PEM) that etcd's server certificates are
    /// verified against; for `https://` endpoints.
    pub ca: Option<PathBuf>,
    /// `cert` and `key`: a client certificate (PEM) for etcd's
    /// `--client-cert-auth`; both or neither.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `user` and `password_file`: etcd's authentication; both or neither.
    /// The password file holds the password on its first line.
    pub auth: Option<(String, PathBuf)>,
    /// `ticket_rotation`: how long one TLS session ticket key encrypts new
    /// tickets; a key decrypts for three periods (next, current,
    /// previous). Default 6 h; at least 1 s.
    pub ticket_rotation: Duration,
    /// `sync_timeout`: how long a starting instance waits for the cluster's
    /// view before it serves without it (and says so). Default 10 s.
    pub sync_timeout: Duration,
    /// `request_timeout`: how long one etcd call may take (a mutation
    /// while etcd is unreachable answers 503 after it). Default 3 s.
    pub request_timeout: Duration,
}

impl Ctx<'_> {
    /// Validates `[cluster]`; `None` when absent.
    pub(super) fn cluster(
        &self,
        raw: Option<&S<RawCluster>>,
        array: &ArrayConfig,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let c = raw.get_ref();
        if c.etcd.get_ref().is_empty() {
            return Err(self.at_value(
                c.etcd.span(),
                "cluster.etcd: name at least one endpoint (\"http://HOST:2379\")".into(),
            ));
        }
        let mut endpoints = Vec::new();
        for e in c.etcd.get_ref() {
            let url = self.check("cluster.etcd", e, |s| endpoint(s))?;
            if endpoints.contains(&url) {
                return Err(
                    self.at_value(e.span(), format!("cluster.etcd: \"{url}\" is listed twice"))
                );
            }
            endpoints.push(url);
        }
        let prefix = match &c.prefix {
            Some(p) => self.check("cluster.prefix", p, |s| prefix(s))?,
            None => format!("/casarray/{}", array.fqdn.to_ascii_lowercase()),
        };
        let instance = match &c.instance {
            Some(i) => Some(self.check("cluster.instance", i, |s| instance(s))?),
            None => None,
        };
        let ca = match &c.ca {
            Some(p) => Some(self.existing_file("cluster.ca", p)?),
            None => None,
        };
        let identity = match (&c.cert, &c.key) {
            (Some(cert), Some(key)) => Some((
                self.existing_file("cluster.cert", cert)?,
                self.existing_file("cluster.key", key)?,
            )),
            (None, None) => None,
            (Some(v), None) | (None, Some(v)) => {
                return Err(self.at_key(
                    v.span(),
                    "cluster.cert and cluster.key: set both (a client certificate and its key) or neither".into(),
                ))
            }
        };
        let auth = match (&c.user, &c.password_file) {
            (Some(user), Some(file)) => {
                if user.get_ref().is_empty() {
                    return Err(self.at_value(user.span(), "cluster.user: empty".into()));
                }
                Some((
                    user.get_ref().clone(),
                    self.existing_file("cluster.password_file", file)?,
                ))
            }
            (None, None) => None,
            (Some(v), None) | (None, Some(v)) => {
                return Err(self.at_key(
                    v.span(),
                    "cluster.user and cluster.password_file: set both or neither".into(),
                ))
            }
        };
        if ca.is_some() || identity.is_some() {
            if let Some(plain) = endpoints.iter().position(|e| e.starts_with("http://")) {
                let span = c.etcd.get_ref()[plain].span();
                return Err(self.at_value(
                    span,
                    "cluster.etcd: cluster.ca / cluster.cert are set: use https:// endpoints"
                        .into(),
                ));
            }
        }
        if ca.is_none() {
            if let Some(tls) = endpoints.iter().position(|e| e.starts_with("https://")) {
                let span = c.etcd.get_ref()[tls].span();
                return Err(self.at_value(
                    span,
                    "cluster.etcd: an https:// endpoint needs cluster.ca (the CA of etcd's server certificates)".into(),
                ));
            }
        }
        let ticket_rotation = self.duration(
            "cluster.ticket_rotation",
            c.ticket_rotation.as_ref(),
            DEFAULT_TICKET_ROTATION,
        )?;
        if ticket_rotation < Duration::from_secs(1) {
            if let Some(v) = &c.ticket_rotation {
                return Err(self.at_value(v.span(), "cluster.ticket_rotation: at least 1s".into()));
            }
        }
        Ok(Some(ClusterConfig {
            endpoints,
            prefix,
            instance,
            ca,
            identity,
            auth,
            ticket_rotation,
            sync_timeout: self.duration(
                "cluster.sync_timeout",
                c.sync_timeout.as_ref(),
                DEFAULT_SYNC_TIMEOUT,
            )?,
            request_timeout: self.duration(
                "cluster.request_timeout",
                c.request_timeout.as_ref(),
                DEFAULT_REQUEST_TIMEOUT,
            )?,
        }))
    }
}

/// `http://HOST:PORT` or `https://HOST:PORT`, nothing after the port.
fn endpoint(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{s}\": expected http://HOST:PORT or https://HOST:PORT"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{s}\": the port is missing (etcd's is usually 2379)"))?;
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(format!(
            "\"{s}\": expected http://HOST:PORT or https://HOST:PORT"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_owned()),
        _ => Err(format!("\"{s}\": the port must be 1 to 65535")),
    }
}

/// A key prefix: starts with `/`, no trailing `/`, printable ASCII without
/// spaces.
fn prefix(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.len() < 2 || s.ends_with('/') {
        return Err(format!(
            "\"{s}\": starts with / and does not end with one (\"/casarray/mail.lab.com\")"
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("\"{s}\": printable ASCII without spaces only"));
    }
    Ok(s.to_owned())
}

/// An instance name: 1 to 128 printable ASCII characters, no `/`.
fn instance(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(format!(
            "\"{s}\": 1 to 128 printable ASCII characters, no spaces nor /"
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(endpoint("http://127.0.0.1:2379").is_ok());
        assert!(endpoint("https://etcd-0.etcd:2379").is_ok());
        for bad in [
            "127.0.0.1:2379",
            "http://",
            "http://h",
            "http://h:0",
            "http://h:x",
            "http://a/b:1",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_and_instances() {
        assert!(prefix("/casarray/mail.lab.com").is_ok());
        for bad in ["casarray", "/", "/a/", "/a b"] {
            assert!(prefix(bad).is_err(), "{bad}");
        }
        assert!(instance("host-a:9090").is_ok());
        for bad in ["", "a/b", "a b"] {
            assert!(instance(bad).is_err(), "{bad}");
        }
    }
}

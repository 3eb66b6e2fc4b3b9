//! From the raw file to a [`Config`]: defaults applied, every value checked,
//! relative paths resolved, each error placed at the key or value at fault.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cidr::Cidr;
use super::duration::parse_duration;
use super::error::ConfigError;
use super::model::*;
use super::profile::{exchange_profile, Profile};
use super::raw::*;
use super::span::{key_start, position};
use super::values;

/// Default `site` (Active Directory's first site).
const DEFAULT_SITE: &str = "Default-First-Site-Name";

/// Default `public_port`: HTTPS's own.
pub(crate) const DEFAULT_PUBLIC_PORT: u16 = 443;

/// Validates `raw`, read from `text` in the file `path`.
pub(crate) fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
    let cx = Ctx {
        text,
        path,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let (array, profile) = cx.array(&raw.array)?;
    let listen = cx.listen(&raw.listen)?;
    let tls = cx.tls(&raw.tls)?;
    let admin = cx.admin(raw.admin.as_ref())?;
    let health = cx.health(raw.health.as_ref())?;
    let proxy = cx.proxy(raw.proxy.as_ref())?;
    let rewrite = cx.rewrite(raw.rewrite.as_ref())?;
    let runtime = cx.runtime(raw.runtime.as_ref())?;
    let smtp = cx.smtp(raw.smtp.as_ref())?;
    let dag = DagConfig {
        enabled: raw.dag.as_ref().and_then(|d| d.enabled).unwrap_or(false),
    };
    let member_tls = cx.member_tls(raw.member_tls.as_ref())?;
    let members = cx.members(raw.member.as_ref(), &member_tls)?;
    let databases = cx.databases(&raw.database)?;
    let services = cx.services(&raw.service, profile)?;
    let security = cx.security(raw.security.as_ref())?;
    let cluster = cx.cluster(raw.cluster.as_ref(), &array)?;
    if let (Some(addr), Some(value)) = (listen.smtp, raw.listen.get_ref().smtp.as_ref()) {
        if members.iter().all(|m| m.smtp.is_none()) {
            return Err(cx.at_value(
                value.span(),
                format!("listen.smtp: {addr} is set but no [[member]] has an smtp address: add smtp = \"HOST:PORT\" (its hub transport) to the members that take SMTP"),
            ));
        }
    }
    Ok(Config {
        path: path.to_path_buf(),
        array,
        listen,
        tls,
        admin,
        health,
        proxy,
        rewrite,
        runtime,
        smtp,
        dag,
        member_tls,
        members,
        databases,
        services,
        security,
        cluster,
    })
}

/// Validates only the `[array]` table.
pub(crate) fn validate_array(
    raw: RawArrayOnly,
    text: &str,
    path: &Path,
) -> Result<(ArrayConfig, Profile), ConfigError> {
    let cx = Ctx {
        text,
        path,
        dir: PathBuf::new(),
    };
    cx.array(&raw.array)
}

/// What errors need to say where.
pub(super) struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    /// The config file's directory: relative paths are resolved against it.
    dir: PathBuf,
}

impl Ctx<'_> {
    fn err_at(&self, offset: usize, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            at: position(self.text, offset),
            message,
        }
    }

    /// An error placed at a value.
    pub(super) fn at_value(&self, span: Range<usize>, message: String) -> ConfigError {
        self.err_at(span.start, message)
    }

    /// An error placed at the key of `key = value`.
    pub(super) fn at_key(&self, span: Range<usize>, message: String) -> ConfigError {
        self.err_at(key_start(self.text, &span), message)
    }

    /// `check`'s error, prefixed with `key: ` and placed at the value.
    pub(super) fn check<T, U>(
        &self,
        key: &str,
        value: &S<T>,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        check(value.get_ref()).map_err(|m| self.at_value(value.span(), format!("{key}: {m}")))
    }

    /// A duration key, above zero; `default` when absent.
    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&S<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let d = self.check(key, value, |s| parse_duration(s))?;
        if d.is_zero() {
            return Err(self.at_value(value.span(), format!("{key}: must be above zero")));
        }
        Ok(d)
    }

    /// A path relative to the config file's directory.
    fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// A path naming a file that must exist; the error points at the key.
    pub(super) fn existing_file(
        &self,
        key: &str,
        value: &S<String>,
    ) -> Result<PathBuf, ConfigError> {
        if value.get_ref().is_empty() {
            return Err(self.at_value(value.span(), format!("{key}: empty path")));
        }
        let path = self.resolve(value.get_ref());
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => return Ok(path),
            Ok(_) => "is not a file".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not found".to_string(),
            Err(e) => format!("cannot be read: {e}"),
        };
        Err(self.at_key(
            value.span(),
            format!("{key}: file \"{}\" {problem}", path.display()),
        ))
    }

    fn dns_name(&self, key: &str, value: &S<String>) -> Result<String, ConfigError> {
        self.check(key, value, |s| values::dns_name(s))?;
        Ok(value.get_ref().clone())
    }

    fn array(&self, raw: &S<RawArray>) -> Result<(ArrayConfig, Profile), ConfigError> {
        let a = raw.get_ref();
        self.check("array.name", &a.name, |s| {
            values::object_name("array name", s)
        })?;
        let fqdn = self.dns_name("array.fqdn", &a.fqdn)?;
        let site = match &a.site {
            Some(site) => {
                self.check("array.site", site, |s| values::object_name("site", s))?;
                site.get_ref().clone()
            }
            None => DEFAULT_SITE.to_string(),
        };
        let public_names = match &a.public_names {
            None => vec![fqdn.clone()],
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(self.at_value(
                        list.span(),
                        "array.public_names: must name at least one host (or leave it out: default [fqdn])"
                            .to_string(),
                    ));
                }
                let mut names: Vec<String> = Vec::new();
                for name in list.get_ref() {
                    let n = self.dns_name("array.public_names", name)?;
                    if names.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
                        return Err(self.at_value(
                            name.span(),
                            format!("array.public_names: \"{n}\" is listed twice"),
                        ));
                    }
                    names.push(n);
                }
                names
            }
        };
        let public_port = match &a.public_port {
            Some(p) => self.check("array.public_port", p, |n| values::port(*n))?,
            None => DEFAULT_PUBLIC_PORT,
        };
        let profile = match &a.profile {
            Some(p) => self.check("array.profile", p, |s| s.parse::<Profile>())?,
            None => Profile::default(),
        };
        let array = ArrayConfig {
            name: a.name.get_ref().clone(),
            fqdn,
            site,
            public_names,
            public_port,
        };
        Ok((array, profile))
    }

    fn listen(&self, raw: &S<RawListen>) -> Result<ListenConfig, ConfigError> {
        let l = raw.get_ref();
        let https = self.check("listen.https", &l.https, |s| values::listen_address(s))?;
        let admin = match &l.admin {
            Some(a) => self.check("listen.admin", a, |s| values::listen_address(s))?,
            None => ([127, 0, 0, 1], 9090).into(),
        };
        let http_redirect = match &l.http_redirect {
            Some(a) => Some(self.check("listen.http_redirect", a, |s| values::listen_address(s))?),
            None => None,
        };
        let smtp = match &l.smtp {
            Some(a) => Some(self.check("listen.smtp", a, |s| values::listen_address(s))?),
            None => None,
        };
        // Each listener against those before it; port 0 asks the system
        // for a free port: no clash.
        let mut taken: Vec<(&str, std::net::SocketAddr)> = vec![("listen.https", https)];
        for (key, addr, value) in [
            ("listen.admin", Some(admin), l.admin.as_ref()),
            (
                "listen.http_redirect",
                http_redirect,
                l.http_redirect.as_ref(),
            ),
            ("listen.smtp", smtp, l.smtp.as_ref()),
        ] {
            let Some(addr) = addr else { continue };
            if let Some((other, _)) = taken.iter().find(|(_, a)| *a == addr && addr.port() != 0) {
                let span = value.map_or(raw.span(), S::span);
                return Err(self.at_value(span, format!("{key}: {addr} is also {other}")));
            }
            taken.push((key, addr));
        }
        Ok(ListenConfig {
            https,
            admin,
            http_redirect,
            smtp,
        })
    }

    fn cert_key(
        &self,
        prefix: &str,
        cert: &S<String>,
        key: Option<&S<String>>,
    ) -> Result<CertKeyPaths, ConfigError> {
        let cert = self.existing_file(&format!("{prefix}.cert"), cert)?;
        let key = match key {
            Some(k) => Some(self.existing_file(&format!("{prefix}.key"), k)?),
            None => None,
        };
        Ok(CertKeyPaths { cert, key })
    }

    fn tls(&self, raw: &S<RawTls>) -> Result<TlsConfig, ConfigError> {
        let t = raw.get_ref();
        let default = self.cert_key("tls", &t.cert, t.key.as_ref())?;
        let sni = t
            .sni
            .iter()
            .map(|s| self.cert_key("tls.sni", &s.cert, s.key.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(TlsConfig {
            default,
            sni,
            handshake_timeout: self.duration(
                "tls.handshake_timeout",
                t.handshake_timeout.as_ref(),
                Duration::from_secs(10),
            )?,
            session_resumption: t.session_resumption.unwrap_or(true),
            watch: t.watch.unwrap_or(true),
        })
    }

    fn admin(&self, raw: Option<&RawAdmin>) -> Result<AdminConfig, ConfigError> {
        let token_file = match raw.and_then(|a| a.token_file.as_ref()) {
            Some(t) => Some(self.existing_file("admin.token_file", t)?),
            None => None,
        };
        let state_file = match raw.and_then(|a| a.state_file.as_ref()) {
            Some(s) => {
                if s.get_ref().is_empty() {
                    return Err(self.at_value(s.span(), "admin.state_file: empty path".into()));
                }
                self.resolve(s.get_ref())
            }
            None => default_state_file(self.path),
        };
        Ok(AdminConfig {
            token_file,
            state_file,
        })
    }

    fn health(&self, raw: Option<&S<RawHealth>>) -> Result<HealthConfig, ConfigError> {
        let h = raw.map(S::get_ref);
        let interval = self.duration(
            "health.interval",
            h.and_then(|h| h.interval.as_ref()),
            Duration::from_secs(1),
        )?;
        let timeout = self.duration(
            "health.timeout",
            h.and_then(|h| h.timeout.as_ref()),
            Duration::from_millis(500),
        )?;
        let count = |key: &str, v: Option<&S<u32>>| match v {
            Some(v) if *v.get_ref() == 0 => {
                Err(self.at_value(v.span(), format!("{key}: must be at least 1")))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(2),
        };
        let rise = count("health.rise", h.and_then(|h| h.rise.as_ref()))?;
        let fall = count("health.fall", h.and_then(|h| h.fall.as_ref()))?;
        if timeout >= interval {
            let span = h
                .and_then(|h| h.timeout.as_ref().or(h.interval.as_ref()).map(S::span))
                .or(raw.map(S::span))
                .unwrap_or(0..0);
            return Err(self.at_value(
                span,
                format!(
                    "health.timeout ({}) must be below health.interval ({})",
                    super::format_duration(timeout),
                    super::format_duration(interval)
                ),
            ));
        }
        Ok(HealthConfig {
            interval,
            timeout,
            rise,
            fall,
        })
    }

    fn proxy(&self, raw: Option<&RawProxy>) -> Result<ProxyConfig, ConfigError> {
        let positive = |key: &str, v: Option<&S<usize>>, default: usize| match v {
            Some(v) if *v.get_ref() == 0 => {
                Err(self.at_value(v.span(), format!("{key}: must be at least 1")))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        };
        let streams = match raw.and_then(|p| p.h2_max_concurrent_streams.as_ref()) {
            Some(v) if *v.get_ref() == 0 => {
                return Err(self.at_value(
                    v.span(),
                    "proxy.h2_max_concurrent_streams: must be at least 1".into(),
                ))
            }
            Some(v) => *v.get_ref(),
            None => 128,
        };
        Ok(ProxyConfig {
            connect_timeout: self.duration(
                "proxy.connect_timeout",
                raw.and_then(|p| p.connect_timeout.as_ref()),
                Duration::from_secs(2),
            )?,
            header_read_timeout: self.duration(
                "proxy.header_read_timeout",
                raw.and_then(|p| p.header_read_timeout.as_ref()),
                Duration::from_secs(30),
            )?,
            pool_idle_timeout: self.duration(
                "proxy.pool_idle_timeout",
                raw.and_then(|p| p.pool_idle_timeout.as_ref()),
                Duration::from_secs(50),
            )?,
            pool_max_idle_per_member: raw.and_then(|p| p.pool_max_idle_per_member).unwrap_or(256),
            drain_timeout: self.duration(
                "proxy.drain_timeout",
                raw.and_then(|p| p.drain_timeout.as_ref()),
                Duration::from_secs(30),
            )?,
            max_connections: positive(
                "proxy.max_connections",
                raw.and_then(|p| p.max_connections.as_ref()),
                10_000,
            )?,
            replay_body_limit: raw.and_then(|p| p.replay_body_limit).unwrap_or(64 * 1024),
            max_header_bytes: positive(
                "proxy.max_header_bytes",
                raw.and_then(|p| p.max_header_bytes.as_ref()),
                64 * 1024,
            )?,
            h2_max_concurrent_streams: streams,
            mailbox_routing: raw.and_then(|p| p.mailbox_routing).unwrap_or(true),
            failover_wait: self.duration(
                "proxy.failover_wait",
                raw.and_then(|p| p.failover_wait.as_ref()),
                Duration::from_secs(15),
            )?,
        })
    }

    fn rewrite(&self, raw: Option<&RawRewrite>) -> Result<RewriteConfig, ConfigError> {
        let content_types = match raw.and_then(|r| r.content_types.as_ref()) {
            None => [
                "text/xml",
                "application/xml",
                "text/html",
                "application/soap+xml",
            ]
            .map(String::from)
            .to_vec(),
            Some(list) => list
                .get_ref()
                .iter()
                .map(|t| self.check("rewrite.content_types", t, |s| values::content_type(s)))
                .collect::<Result<_, _>>()?,
        };
        Ok(RewriteConfig {
            expose_server_headers: raw.and_then(|r| r.expose_server_headers).unwrap_or(false),
            content_types,
        })
    }

    fn smtp(&self, raw: Option<&RawSmtp>) -> Result<SmtpConfig, ConfigError> {
        let d = SmtpConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        Ok(SmtpConfig {
            health: match &raw.health {
                Some(h) => self.check("smtp.health", h, |s| values::smtp_health(s))?,
                None => d.health,
            },
            banner_timeout: self.duration(
                "smtp.banner_timeout",
                raw.banner_timeout.as_ref(),
                d.banner_timeout,
            )?,
            proxy_protocol: raw.proxy_protocol.unwrap_or(d.proxy_protocol),
            idle_timeout: self.duration(
                "smtp.idle_timeout",
                raw.idle_timeout.as_ref(),
                d.idle_timeout,
            )?,
        })
    }

    fn runtime(&self, raw: Option<&RawRuntime>) -> Result<RuntimeConfig, ConfigError> {
        let workers = match raw.and_then(|r| r.workers.as_ref()) {
            Some(w) if *w.get_ref() == 0 => {
                return Err(self.at_value(w.span(), "runtime.workers: must be at least 1".into()))
            }
            Some(w) => Some(*w.get_ref()),
            None => None,
        };
        Ok(RuntimeConfig { workers })
    }

    fn member_tls(&self, raw: Option<&S<RawMemberTls>>) -> Result<MemberTlsConfig, ConfigError> {
        let Some(t) = raw.map(S::get_ref) else {
            return Ok(MemberTlsConfig::default());
        };
        let ca = match &t.ca {
            Some(value) => {
                let path = self.existing_file("member_tls.ca", value)?;
                let certs = super::ca::read_bundle(&path).map_err(|why| {
                    self.at_key(
                        value.span(),
                        format!("member_tls.ca: file \"{}\" {why}", path.display()),
                    )
                })?;
                Some(CaBundle { path, certs })
            }
            None => None,
        };
        Ok(MemberTlsConfig {
            ca,
            verify: t.verify.as_ref().is_none_or(|v| *v.get_ref()),
        })
    }

    fn members(
        &self,
        raw: Option<&S<Vec<S<RawMember>>>>,
        member_tls: &MemberTlsConfig,
    ) -> Result<Vec<MemberConfig>, ConfigError> {
        let Some(list) = raw.filter(|l| !l.get_ref().is_empty()) else {
            let span = raw.map_or(0..0, S::span);
            return Err(self.at_value(
                span,
                "no [[member]]: the array needs at least one member".into(),
            ));
        };
        let mut members: Vec<MemberConfig> = Vec::new();
        let mut name_spans: Vec<Range<usize>> = Vec::new();
        for m in list.get_ref().iter().map(S::get_ref) {
            let name = m.name.get_ref();
            self.check("member.name", &m.name, |s| values::member_name(s))?;
            if let Some(i) = members
                .iter()
                .position(|o| o.name.eq_ignore_ascii_case(name))
            {
                let first = position(self.text, name_spans[i].start);
                return Err(self.at_value(
                    m.name.span(),
                    format!(
                        "member.name: duplicate member \"{name}\" (first at line {}; names are case-insensitive)",
                        first.line
                    ),
                ));
            }
            let address =
                self.check("member.address", &m.address, |s| values::member_address(s))?;
            let fqdn = match &m.fqdn {
                Some(f) => self.dns_name("member.fqdn", f)?,
                None => {
                    let fqdn = name.to_ascii_lowercase();
                    values::dns_name(&fqdn).map_err(|e| {
                        self.at_value(
                            m.name.span(),
                            format!("member.name: {e} (the default fqdn is the name: set fqdn)"),
                        )
                    })?;
                    fqdn
                }
            };
            let weight = match &m.weight {
                Some(w) if !(1..=100).contains(w.get_ref()) => {
                    return Err(self.at_value(
                        w.span(),
                        format!("member.weight: {} is not within 1..=100", w.get_ref()),
                    ))
                }
                Some(w) => *w.get_ref(),
                None => 1,
            };
            let tls = m.tls.as_ref().is_some_and(|t| *t.get_ref());
            let tls_server_name = match &m.tls_server_name {
                Some(_) if !tls => {
                    let span = m.tls_server_name.as_ref().map_or(0..0, S::span);
                    return Err(self.at_key(
                        span,
                        format!(
                            "member.tls_server_name: member \"{name}\" does not use TLS: add tls = true, or remove tls_server_name"
                        ),
                    ));
                }
                Some(n) => {
                    self.check("member.tls_server_name", n, |s| values::tls_server_name(s))?;
                    n.get_ref().clone()
                }
                None => fqdn.clone(),
            };
            if let Some(t) = m.tls.as_ref().filter(|_| tls) {
                if member_tls.verify && member_tls.ca.is_none() {
                    return Err(self.at_key(
                        t.span(),
                        format!(
                            "member.tls: member \"{name}\" uses TLS and its certificate is verified, but no CA is set: add [member_tls] with ca = \"<PEM file of the CA that signs the members' certificates>\" (or verify = false to accept any certificate)"
                        ),
                    ));
                }
            }
            let smtp = match &m.smtp {
                Some(a) => Some(self.check("member.smtp", a, |s| values::member_address(s))?),
                None => None,
            };
            name_spans.push(m.name.span());
            members.push(MemberConfig {
                name: name.clone(),
                address_text: m.address.get_ref().clone(),
                address,
                fqdn,
                weight,
                tls,
                tls_server_name,
                smtp,
            });
        }
        Ok(members)
    }

    fn databases(&self, raw: &[S<RawDatabase>]) -> Result<Vec<DatabaseConfig>, ConfigError> {
        let mut dbs: Vec<DatabaseConfig> = Vec::new();
        for d in raw.iter().map(S::get_ref) {
            let name = d.name.get_ref();
            self.check("database.name", &d.name, |s| {
                values::object_name("database name", s)
            })?;
            if dbs.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
                return Err(self.at_value(
                    d.name.span(),
                    format!(
                        "database.name: duplicate database \"{name}\" (names are case-insensitive)"
                    ),
                ));
            }
            let rpc = match &d.rpc_client_access_server {
                Some(r) => Some(self.dns_name("database.rpc_client_access_server", r)?),
                None => None,
            };
            dbs.push(DatabaseConfig {
                name: name.clone(),
                rpc_client_access_server: rpc,
            });
        }
        Ok(dbs)
    }

    fn services(
        &self,
        raw: &[S<RawService>],
        profile: Profile,
    ) -> Result<Vec<ServiceConfig>, ConfigError> {
        let builtin = exchange_profile(profile);
        if raw.is_empty() {
            return Ok(builtin);
        }
        let mut services: Vec<ServiceConfig> = Vec::new();
        for s in raw.iter().map(S::get_ref) {
            let name = s.name.get_ref();
            self.check("service.name", &s.name, |n| values::service_name(n))?;
            if services.iter().any(|o| &o.name == name) {
                return Err(self.at_value(
                    s.name.span(),
                    format!("service.name: duplicate service \"{name}\""),
                ));
            }
            let base = builtin.iter().find(|b| &b.name == name);
            let prefix = match (&s.prefix, base) {
                (Some(p), _) => self.check("service.prefix", p, |p| values::prefix(p))?,
                (None, Some(b)) => b.prefix.clone(),
                (None, None) => {
                    return Err(self.at_value(
                        s.name.span(),
                        format!("service \"{name}\": prefix is required (not a built-in service)"),
                    ))
                }
            };
            if let Some(o) = services
                .iter()
                .find(|o| o.prefix.eq_ignore_ascii_case(&prefix))
            {
                let span = s.prefix.as_ref().map_or(s.name.span(), S::span);
                return Err(self.at_value(
                    span,
                    format!(
                        "service.prefix: \"{prefix}\" is already the prefix of service \"{}\" (prefixes are case-insensitive)",
                        o.name
                    ),
                ));
            }
            let health = match &s.health {
                Some(h) => {
                    self.check("service.health", h, |h| values::health_path(h))?;
                    h.get_ref().clone()
                }
                None => format!("{prefix}/healthcheck.htm"),
            };
            let health_kind = match &s.health_kind {
                Some(k) => self.check("service.health_kind", k, |k| values::health_kind(k))?,
                None => base.map_or(HealthKind::Http, |b| b.health_kind),
            };
            let idle_timeout = self.duration(
                "service.idle_timeout",
                s.idle_timeout.as_ref(),
                base.map_or(Duration::from_secs(15 * 60), |b| b.idle_timeout),
            )?;
            let response_timeout = self.duration(
                "service.response_timeout",
                s.response_timeout.as_ref(),
                base.map_or(Duration::from_secs(120), |b| b.response_timeout),
            )?;
            let affinity = match &s.affinity {
                Some(a) => self.check("service.affinity", a, |a| values::affinity(a))?,
                None => base.map_or(Affinity::None, |b| b.affinity.clone()),
            };
            let rewrite = s.rewrite.unwrap_or(base.is_some_and(|b| b.rewrite));
            let allow_from = match &s.allow_from {
                Some(list) => Some(self.allow_from(list)?),
                None => base.and_then(|b| b.allow_from.clone()),
            };
            services.push(ServiceConfig {
                name: name.clone(),
                prefix,
                health,
                health_kind,
                idle_timeout,
                response_timeout,
                affinity,
                rewrite,
                allow_from,
            });
        }
        Ok(services)
    }

    /// `[[service]] allow_from`: a non-empty list of addresses and ranges.
    fn allow_from(&self, list: &S<Vec<S<String>>>) -> Result<Vec<Cidr>, ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.at_value(
                list.span(),
                "service.allow_from: an empty list lets nobody in (leave it out to let everyone in, or write [\"0.0.0.0/0\", \"::/0\"])".into(),
            ));
        }
        list.get_ref()
            .iter()
            .map(|c| {
                self.check("service.allow_from", c, |t| {
                    t.parse::<Cidr>().map_err(|e| e.to_string())
                })
            })
            .collect()
    }

    fn security(&self, raw: Option<&S<RawSecurity>>) -> Result<SecurityConfig, ConfigError> {
        let defaults = SecurityConfig::default();
        let Some(r) = raw.map(S::get_ref) else {
            return Ok(defaults);
        };
        let mut disabled_rules: Vec<String> = Vec::new();
        for id in r.disabled_rules.iter().flat_map(|l| l.get_ref()) {
            let name = id.get_ref();
            if !SHIELD_RULE_IDS.contains(&name.as_str()) {
                return Err(self.at_value(
                    id.span(),
                    format!(
                        "security.disabled_rules: unknown rule \"{name}\" (rules: {})",
                        SHIELD_RULE_IDS.join(", ")
                    ),
                ));
            }
            if disabled_rules.contains(name) {
                return Err(self.at_value(
                    id.span(),
                    format!("security.disabled_rules: \"{name}\" is listed twice"),
                ));
            }
            disabled_rules.push(name.clone());
        }
        let lockout_failures = match &r.lockout_failures {
            Some(n) => self.check("security.lockout_failures", n, |n| {
                u32::try_from(*n)
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| format!("{n} is not within 1..=100"))
            })?,
            None => defaults.lockout_failures,
        };
        let seconds = |key: &str, value: Option<&S<String>>, default: Duration, max: Duration| {
            let Some(value) = value else {
                return Ok(default);
            };
            let d = self.check(key, value, |s| parse_duration(s))?;
            let whole = Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0));
            if whole < Duration::from_secs(1) || whole > max {
                return Err(self.at_value(
                    value.span(),
                    format!(
                        "{key}: {} is not within 1s..={}",
                        value.get_ref(),
                        super::format_duration(max)
                    ),
                ));
            }
            Ok(whole)
        };
        let lockout_window = seconds(
            "security.lockout_window",
            r.lockout_window.as_ref(),
            defaults.lockout_window,
            Duration::from_secs(24 * 3600),
        )?;
        let lockout_time = seconds(
            "security.lockout_time",
            r.lockout_time.as_ref(),
            defaults.lockout_time,
            Duration::from_secs(30 * 24 * 3600),
        )?;
        let hsts_max_age = match &r.hsts_max_age {
            Some(v) => {
                let d = self.check("security.hsts_max_age", v, |s| parse_duration(s))?;
                Some(Duration::from_secs(d.as_secs()))
            }
            None => None,
        };
        let include_subdomains = r.hsts_include_subdomains.as_ref();
        if let (None, Some(v)) = (&hsts_max_age, include_subdomains.filter(|v| *v.get_ref())) {
            return Err(self.at_key(
                v.span(),
                "security.hsts_include_subdomains: set hsts_max_age too (no header is sent without it)".into(),
            ));
        }
        Ok(SecurityConfig {
            exchange_shields: r.exchange_shields.unwrap_or(defaults.exchange_shields),
            disabled_rules,
            lockout_failures,
            lockout_window,
            lockout_time,
            hsts_max_age,
            hsts_include_subdomains: include_subdomains.is_some_and(|v| *v.get_ref()),
            strip_version_headers: r.strip_version_headers.unwrap_or(false),
        })
    }
}

/// `<config file name>.state.json` beside the config file.
fn default_state_file(config: &Path) -> PathBuf {
    let mut name = config
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "casarray.toml".into());
    name.push(".state.json");
    config.with_file_name(name)
}

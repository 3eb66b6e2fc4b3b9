//! The validated configuration: what every other module reads.
//!
//! `config::load` turns a TOML file into a [`Config`]; nothing here is
//! parsed or checked again downstream. Relative paths are already resolved
//! against the config file's directory, durations are `Duration`s, addresses
//! are resolved `SocketAddr`s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::cidr::Cidr;
use super::cluster::ClusterConfig;

/// The ids of the Exchange shields' rules, in the order they are checked:
/// what `[security] disabled_rules` may name (README "Security"). The
/// rules themselves are `security::rules::RULES`, whose test checks that
/// their ids are these.
pub const SHIELD_RULE_IDS: [&str; 8] = [
    "internal-routing-headers",
    "proxylogon-anonresource",
    "proxylogon-beresource",
    "proxylogon-backendcookie",
    "proxyshell-explicit-logon",
    "proxyshell-rps-cat",
    "proxynotshell-autodiscover-powershell",
    "owassrf-powershell",
];

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub array: ArrayConfig,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub admin: AdminConfig,
    pub health: HealthConfig,
    pub proxy: ProxyConfig,
    pub rewrite: RewriteConfig,
    pub runtime: RuntimeConfig,
    /// `[smtp]`: how SMTP on `listen.smtp` reaches the members' hubs.
    pub smtp: SmtpConfig,
    /// `[dag]`: whether the members run a database availability group the
    /// array learns from.
    pub dag: DagConfig,
    /// `[member_tls]`: how members that serve HTTPS are checked.
    pub member_tls: MemberTlsConfig,
    /// At least one; names unique (case-insensitive).
    pub members: Vec<MemberConfig>,
    pub databases: Vec<DatabaseConfig>,
    /// The `[[service]]` tables, or the built-in Exchange profile when none
    /// (`[array] profile`: `exchange2013`, the default, or `exchange2010`).
    /// A `[[service]]` named like a built-in service takes that service's
    /// values as its defaults.
    pub services: Vec<ServiceConfig>,
    /// `[security]`: the Exchange shields, failed-logon lockout and
    /// response hardening.
    pub security: SecurityConfig,
    /// `[cluster]`: state shared with the other instances through etcd;
    /// `None`: this instance keeps it in its own state file.
    pub cluster: Option<ClusterConfig>,
}

/// `[array]`: `New-ClientAccessArray -Name -Fqdn -Site`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayConfig {
    pub name: String,
    /// The array's fqdn: the RPC client access endpoint name.
    pub fqdn: String,
    /// Active Directory site; default `Default-First-Site-Name`.
    pub site: String,
    /// Public HTTPS names clients use (Host header accepted, the name member
    /// names are rewritten to). Default: `[fqdn]`. The first is the primary.
    pub public_names: Vec<String>,
    /// The TCP port clients reach the public names on (1 to 65535). Not
    /// necessarily `listen.https`'s port: behind NAT, a load balancer or a
    /// Kubernetes Service the two differ. Member URLs rewritten to the
    /// public name carry it when it is not 443. Default 443.
    pub public_port: u16,
}

/// `[listen]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenConfig {
    pub https: SocketAddr,
    /// Default 127.0.0.1:9090.
    pub admin: SocketAddr,
    /// Optional plain-HTTP listener that redirects to https.
    pub http_redirect: Option<SocketAddr>,
    /// Optional SMTP listener, balanced at L4 over the members' `smtp`
    /// addresses (their hub transport).
    pub smtp: Option<SocketAddr>,
}

/// `[dag]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DagConfig {
    /// The members run a DAG and report it (`GET /mock/dag/status`, as the
    /// mock servers do): poll them every health interval to learn each
    /// database's active copy and each mailbox's database (for mailbox
    /// routing and `GET /api/databases`). Default false: members that are
    /// not asked see no extra request.
    pub enabled: bool,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    /// `health`: `ehlo` (the 220 banner, EHLO answered 250, QUIT; the
    /// default) or `tcp` (a connect).
    pub health: HealthKind,
    /// A member that does not greet with 220 within this is skipped for the
    /// connection; default 5 s.
    pub banner_timeout: Duration,
    /// Send a PROXY protocol v2 header first, so the hub sees the client's
    /// address (health checks send one too, with the LOCAL command);
    /// default false.
    pub proxy_protocol: bool,
    /// Longest quiet spell in a session, both ways; default 10 min (RFC
    /// 5321's longest server timeout).
    pub idle_timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            health: HealthKind::Ehlo,
            banner_timeout: Duration::from_secs(5),
            proxy_protocol: false,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// A certificate chain and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct CertKeyPaths {
    /// Base64 PEM, leaf first, then the chain.
    pub cert: PathBuf,
    /// Base64 PEM private key. `None`: the key is in the `cert` file (an
    /// exported bundle).
    pub key: Option<PathBuf>,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// The default certificate (served to clients without SNI or whose SNI
    /// matches nothing else).
    pub default: CertKeyPaths,
    /// `[[tls.sni]]`: more certificates, chosen by the names they carry.
    pub sni: Vec<CertKeyPaths>,
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Session tickets and a server-side session cache; default true.
    pub session_resumption: bool,
    /// Watch certificate files (and `[member_tls] ca`) and reload on
    /// change; default true.
    pub watch: bool,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Bearer token file for mutating admin calls; `None` = mutations refused.
    pub token_file: Option<PathBuf>,
    /// Where admin mutations (drain state) persist. Default:
    /// `<config file name>.state.json` next to the config.
    pub state_file: PathBuf,
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Default 1 s.
    pub interval: Duration,
    /// Default 500 ms; must be below `interval`.
    pub timeout: Duration,
    /// Successes to bring a (member, service) in; default 2, at least 1.
    pub rise: u32,
    /// Failures to take it out; default 2, at least 1.
    pub fall: u32,
}

/// `[proxy]`: limits and timeouts of the forwarding path.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// TCP connect to a member; default 2 s.
    pub connect_timeout: Duration,
    /// Whole request head from a client; default 30 s.
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections to members are closed after this;
    /// default 50 s (IIS closes at 120 s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per member; default 256.
    pub pool_max_idle_per_member: usize,
    /// On SIGTERM, how long in-flight requests get; default 30 s.
    pub drain_timeout: Duration,
    /// Client connections at once; past it new ones are refused; default 10000.
    pub max_connections: usize,
    /// Request bodies up to this size are kept until the response starts so
    /// the request can be replayed on another member; default 64 KiB.
    pub replay_body_limit: usize,
    /// Largest request head from a client; default 64 KiB.
    pub max_header_bytes: usize,
    /// HTTP/2 streams per client connection; default 128.
    pub h2_max_concurrent_streams: u32,
    /// Send each request for a mailbox to the member holding its database's
    /// active copy, when the members run a DAG; default true.
    pub mailbox_routing: bool,
    /// Requests for a database being activated wait this long for its new
    /// copy, then get 503; default 15 s.
    pub failover_wait: Duration,
}

/// `[rewrite]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteConfig {
    /// Keep server-identity headers (X-FEServer, X-BEServer, ...) in answers;
    /// default false (removed).
    pub expose_server_headers: bool,
    /// Content types whose bodies are rewritten on services with
    /// `rewrite = true`. Default: text/xml, application/xml, text/html,
    /// application/soap+xml. Autodiscover answers are rewritten in
    /// text/xml, application/xml, application/soap+xml and application/json
    /// whatever this says; application/json is not in the default because
    /// OWA's JSON carries users' mail.
    pub content_types: Vec<String>,
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Worker threads; `None` = one per core.
    pub workers: Option<usize>,
}

/// `[[member]]`: one Client Access server.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    pub name: String,
    /// As written (`127.0.0.1:9001` or `ex1.lab.local:80`).
    pub address_text: String,
    /// Resolved when the config was loaded.
    pub address: SocketAddr,
    /// What the member calls itself. Default: the name, lowercased.
    pub fqdn: String,
    /// Share of the traffic against the other members; default 1, 1..=100.
    pub weight: u32,
    /// HTTPS to this member (`tls = true`); default false: plain HTTP/1.1
    /// (SSL offloading).
    pub tls: bool,
    /// The name sent in SNI and checked against the member's certificate
    /// (`tls_server_name`, a DNS name or an IP address); default: `fqdn`.
    /// Used only with `tls`.
    pub tls_server_name: String,
    /// The member's SMTP address (its hub transport), resolved; `None`: it
    /// takes no SMTP.
    pub smtp: Option<SocketAddr>,
}

/// `[member_tls]`: how the array checks the certificates of members with
/// `tls = true`. The table is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberTlsConfig {
    /// `ca`: the CAs that sign the members' certificates, read when the
    /// config is loaded (and on every reload). Default: none, which is an
    /// error when a member uses TLS with `verify` on.
    pub ca: Option<CaBundle>,
    /// `verify`: check each member's certificate (chain to `ca`, validity,
    /// `tls_server_name`); default true. False accepts any certificate, as
    /// HAProxy's `ssl verify none` (the handshake's signatures are still
    /// checked).
    pub verify: bool,
}

impl Default for MemberTlsConfig {
    fn default() -> Self {
        MemberTlsConfig {
            ca: None,
            verify: true,
        }
    }
}

/// A PEM bundle of CA certificates, as read from its file.
#[derive(Clone, PartialEq)]
pub struct CaBundle {
    /// The file, resolved against the config's directory.
    pub path: PathBuf,
    /// Every certificate of the file, in order (at least one).
    pub certs: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certs", &self.certs.len())
            .finish()
    }
}

/// `[[database]]`: `Set-MailboxDatabase -RpcClientAccessServer`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    pub name: String,
    /// `None`: unset, Autodiscover keeps what the server said.
    pub rpc_client_access_server: Option<String>,
}

/// A service's stickiness rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Affinity {
    None,
    /// The array inserts its own opaque cookie.
    Cookie,
    /// Consistent hashing of the client address.
    SourceIp,
    /// Consistent hashing of a request header's value (lowercase name).
    Header(String),
}

/// How a service's health is checked on each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthKind {
    /// `GET <health path>`: 200 with "200 OK" in the body (Exchange's
    /// `healthcheck.htm`). The default.
    Http,
    /// A TCP connect (and the TLS handshake for `tls = true` members).
    Tcp,
    /// SMTP: the 220 banner, `EHLO` answered 250, then `QUIT` (`[smtp]
    /// health` only).
    Ehlo,
}

/// `[[service]]`: one client protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    /// Begins with `/`, no trailing `/`; matched case-insensitively.
    pub prefix: String,
    /// Health path; default `<prefix>/healthcheck.htm`.
    pub health: String,
    /// `health_kind`: `http` (default) or `tcp`.
    pub health_kind: HealthKind,
    /// Longest quiet spell in a request or response body; default 15 min
    /// (rpc and mapi: 3 h).
    pub idle_timeout: Duration,
    /// Time to the response head from a member; default 120 s.
    pub response_timeout: Duration,
    pub affinity: Affinity,
    /// Rewrite member names in this service's bodies; default true for
    /// owa, ecp, autodiscover, oab and powershell, false for ews, eas, rpc, mapi.
    pub rewrite: bool,
    /// `allow_from`: the client addresses that may use this service; others
    /// get 403 from the array. `None`: everyone (the default, except the
    /// built-in powershell service: loopback and the private ranges, see
    /// [`Cidr::internal`]).
    pub allow_from: Option<Vec<Cidr>>,
}

/// `[security]`. See README "Security".
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// `exchange_shields`: refuse (403) the request shapes of the known
    /// Exchange front-end exploit chains; default true.
    pub exchange_shields: bool,
    /// `disabled_rules`: shield rule ids turned off one by one (each a
    /// known id); default none.
    pub disabled_rules: Vec<String>,
    /// `lockout_failures`: failed logons within `lockout_window` that lock
    /// an address (or, smartly, a user) out; 1..=100, default 20.
    pub lockout_failures: u32,
    /// `lockout_window`: the sliding window failed logons are counted over;
    /// whole seconds (rounded up), 1 s to 1 day, default 5 min.
    pub lockout_window: Duration,
    /// `lockout_time`: how long a lockout lasts (429 with `Retry-After`);
    /// whole seconds (rounded up), 1 s to 30 days, default 15 min.
    pub lockout_time: Duration,
    /// `hsts_max_age`: send `Strict-Transport-Security: max-age=<seconds>`
    /// with every answer from a member; whole seconds (rounded down, 0
    /// allowed: it tells browsers to forget); default `None`, no header.
    pub hsts_max_age: Option<Duration>,
    /// `hsts_include_subdomains`: add `; includeSubDomains`; default false.
    pub hsts_include_subdomains: bool,
    /// `strip_version_headers`: remove the headers by which members tell
    /// their software and build (`Server`, `X-Powered-By`,
    /// `X-AspNet-Version`, `X-AspNetMvc-Version`, `X-OWA-Version`) from
    /// their answers; default false.
    pub strip_version_headers: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            exchange_shields: true,
            disabled_rules: Vec::new(),
            lockout_failures: 20,
            lockout_window: Duration::from_secs(5 * 60),
            lockout_time: Duration::from_secs(15 * 60),
            hsts_max_age: None,
            hsts_include_subdomains: false,
            strip_version_headers: false,
        }
    }
}

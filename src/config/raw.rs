//! The config file as written: serde structs mirroring the TOML, unknown
//! keys refused, every value that validation may complain about kept with
//! its byte span.

use serde::Deserialize;
use toml::Spanned;

/// A value with its byte span in the file.
pub(crate) type S<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub array: S<RawArray>,
    pub listen: S<RawListen>,
    pub tls: S<RawTls>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub health: Option<S<RawHealth>>,
    #[serde(default)]
    pub proxy: Option<RawProxy>,
    #[serde(default)]
    pub rewrite: Option<RawRewrite>,
    #[serde(default)]
    pub runtime: Option<RawRuntime>,
    #[serde(default)]
    pub smtp: Option<RawSmtp>,
    #[serde(default)]
    pub dag: Option<RawDag>,
    #[serde(default)]
    pub member_tls: Option<S<RawMemberTls>>,
    #[serde(default)]
    pub member: Option<S<Vec<S<RawMember>>>>,
    #[serde(default)]
    pub database: Vec<S<RawDatabase>>,
    #[serde(default)]
    pub service: Vec<S<RawService>>,
    #[serde(default)]
    pub security: Option<S<RawSecurity>>,
    #[serde(default)]
    pub cluster: Option<S<RawCluster>>,
}

/// Only the `[array]` table; everything else is ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct RawArrayOnly {
    pub array: S<RawArray>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArray {
    pub name: S<String>,
    pub fqdn: S<String>,
    pub site: Option<S<String>>,
    pub public_names: Option<S<Vec<S<String>>>>,
    /// Read as any integer so that a value out of range gets our message.
    pub public_port: Option<S<i64>>,
    pub profile: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub https: S<String>,
    pub admin: Option<S<String>>,
    pub http_redirect: Option<S<String>>,
    pub smtp: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDag {
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub health: Option<S<String>>,
    pub banner_timeout: Option<S<String>>,
    pub proxy_protocol: Option<bool>,
    pub idle_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertKey {
    pub cert: S<String>,
    pub key: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: S<String>,
    pub key: Option<S<String>>,
    #[serde(default)]
    pub sni: Vec<RawCertKey>,
    pub handshake_timeout: Option<S<String>>,
    pub session_resumption: Option<bool>,
    pub watch: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub token_file: Option<S<String>>,
    pub state_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub rise: Option<S<u32>>,
    pub fall: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub connect_timeout: Option<S<String>>,
    pub header_read_timeout: Option<S<String>>,
    pub pool_idle_timeout: Option<S<String>>,
    pub pool_max_idle_per_member: Option<usize>,
    pub drain_timeout: Option<S<String>>,
    pub max_connections: Option<S<usize>>,
    pub replay_body_limit: Option<usize>,
    pub max_header_bytes: Option<S<usize>>,
    pub h2_max_concurrent_streams: Option<S<u32>>,
    pub mailbox_routing: Option<bool>,
    pub failover_wait: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRewrite {
    pub expose_server_headers: Option<bool>,
    pub content_types: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub workers: Option<S<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub name: S<String>,
    pub address: S<String>,
    pub fqdn: Option<S<String>>,
    pub weight: Option<S<u32>>,
    pub tls: Option<S<bool>>,
    pub tls_server_name: Option<S<String>>,
    pub smtp: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMemberTls {
    pub ca: Option<S<String>>,
    pub verify: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub name: S<String>,
    pub rpc_client_access_server: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub name: S<String>,
    pub prefix: Option<S<String>>,
    pub health: Option<S<String>>,
    pub health_kind: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    pub response_timeout: Option<S<String>>,
    pub affinity: Option<S<String>>,
    pub rewrite: Option<bool>,
    pub allow_from: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub exchange_shields: Option<bool>,
    pub disabled_rules: Option<S<Vec<S<String>>>>,
    /// Read as any integer so that a value out of range gets our message.
    pub lockout_failures: Option<S<i64>>,
    pub lockout_window: Option<S<String>>,
    pub lockout_time: Option<S<String>>,
    pub hsts_max_age: Option<S<String>>,
    pub hsts_include_subdomains: Option<S<bool>>,
    pub strip_version_headers: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub etcd: S<Vec<S<String>>>,
    pub prefix: Option<S<String>>,
    pub instance: Option<S<String>>,
    pub ca: Option<S<String>>,
    pub cert: Option<S<String>>,
    pub key: Option<S<String>>,
    pub user: Option<S<String>>,
    pub password_file: Option<S<String>>,
    pub ticket_rotation: Option<S<String>>,
    pub sync_timeout: Option<S<String>>,
    pub request_timeout: Option<S<String>>,
}

/// Parses the text into the raw structs; the error carries toml's message
/// and byte span.
pub(crate) fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, toml::de::Error> {
    toml::from_str(text)
}

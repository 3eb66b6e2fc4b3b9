//! The built-in Exchange service profile: what applies when the config has
//! no `[[service]]` tables, and the defaults of a `[[service]]` table that
//! names one of these services.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::cidr::Cidr;
use super::model::{Affinity, HealthKind, ServiceConfig};

/// Which Exchange generation's load-balancing advice the built-in services
/// follow. Chosen by `[array] profile`; default `exchange2013`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// Exchange 2013 and later: Client Access is stateless (every request is
    /// authenticated and proxied to the mailbox's server), so no service
    /// needs affinity.
    #[default]
    Exchange2013,
    /// Exchange 2010: the Client Access server holds session state for
    /// several protocols, so Microsoft's load-balancing guidance asks for
    /// affinity on them (see [`exchange_profile`]).
    Exchange2010,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exchange2013" => Ok(Self::Exchange2013),
            "exchange2010" => Ok(Self::Exchange2010),
            _ => Err(format!(
                "unknown profile \"{s}\" (expected \"exchange2013\" or \"exchange2010\")"
            )),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Exchange2013 => "exchange2013",
            Self::Exchange2010 => "exchange2010",
        })
    }
}

/// Body idle timeout of most services: 15 min.
const IDLE: Duration = Duration::from_secs(15 * 60);
/// Body idle timeout of Outlook Anywhere and MAPI/HTTP: 3 h. Outlook keeps
/// their long-lived requests open for a long time with little traffic.
const IDLE_LONG: Duration = Duration::from_secs(3 * 3600);
/// Time to the response head: 120 s.
const RESPONSE: Duration = Duration::from_secs(120);

/// The Exchange client protocols as services.
///
/// | name | prefix | idle | rewrite | 2013 | 2010 |
/// |---|---|---|---|---|---|
/// | owa | /owa | 15m | yes | none | cookie |
/// | ecp | /ecp | 15m | yes | none | cookie |
/// | ews | /EWS | 15m | no | none | cookie |
/// | eas | /Microsoft-Server-ActiveSync | 15m | no | none | header:authorization |
/// | autodiscover | /Autodiscover | 15m | yes | none | none |
/// | rpc | /rpc | 3h | no | none | source-ip |
/// | mapi | /mapi | 3h | no | none | none |
/// | oab | /OAB | 15m | yes | none | none |
/// | powershell | /PowerShell | 15m | yes | none | source-ip |
///
/// Every health path is `<prefix>/healthcheck.htm`, every response timeout
/// 120 s.
///
/// Remote PowerShell (`powershell`) is open to loopback and the private
/// ranges only (`allow_from`, see [`Cidr::internal`]), as Microsoft advises:
/// Exchange's management shell is for administrators on the internal
/// network, and every remote-code-execution chain of the ProxyShell family
/// ended there. The other services are open to every address.
///
/// Body rewriting (member names to the array's) is on for the web and
/// admin pages and the XML manifests (owa, ecp, autodiscover, oab,
/// powershell), and off where bodies carry users' mail (ews, eas) or are
/// binary RPC (rpc, mapi): rewriting a message that mentions a server's name
/// would change the user's mail. Only `[rewrite] content_types` are touched.
///
/// Why the Exchange 2010 column:
/// - OWA and ECP: forms-based authentication and the session live on the
///   Client Access server that logged the user on; another one asks the user
///   to log on again. Browsers carry cookies, so cookie affinity.
/// - EWS: notification subscriptions (streaming and pull) and some
///   multi-request operations are held by one server; EWS clients keep
///   cookies, so cookie affinity.
/// - Outlook Anywhere (rpc): the RPC_IN_DATA and RPC_OUT_DATA halves of one
///   RPC-over-HTTP session must meet on the same server, and Outlook does not
///   keep load-balancer cookies, so source-IP affinity.
/// - ActiveSync: devices do not keep cookies either; Microsoft suggests the
///   Authorization header (one user, one server) to keep the per-user sync
///   state warm on one server: `header:authorization`.
/// - Remote PowerShell: a runspace is a session on one server; the client
///   keeps no cookies, so source-IP affinity.
/// - Autodiscover and OAB: single stateless requests, no affinity.
/// - MAPI/HTTP came with Exchange 2013 SP1, so Exchange 2010 guidance has
///   nothing for it; it is stateless on the Client Access role: none.
pub fn exchange_profile(profile: Profile) -> Vec<ServiceConfig> {
    let e2010 = profile == Profile::Exchange2010;
    let pick = |legacy: Affinity| if e2010 { legacy } else { Affinity::None };
    let service = |name: &str, prefix: &str, idle, rewrite, affinity| ServiceConfig {
        name: name.to_string(),
        prefix: prefix.to_string(),
        health: format!("{prefix}/healthcheck.htm"),
        health_kind: HealthKind::Http,
        idle_timeout: idle,
        response_timeout: RESPONSE,
        affinity,
        rewrite,
        allow_from: None,
    };
    let internal_only = |s: ServiceConfig| ServiceConfig {
        allow_from: Some(Cidr::internal()),
        ..s
    };
    vec![
        service("owa", "/owa", IDLE, true, pick(Affinity::Cookie)),
        service("ecp", "/ecp", IDLE, true, pick(Affinity::Cookie)),
        service("ews", "/EWS", IDLE, false, pick(Affinity::Cookie)),
        service(
            "eas",
            "/Microsoft-Server-ActiveSync",
            IDLE,
            false,
            pick(Affinity::Header("authorization".to_string())),
        ),
        service("autodiscover", "/Autodiscover", IDLE, true, Affinity::None),
        service("rpc", "/rpc", IDLE_LONG, false, pick(Affinity::SourceIp)),
        service("mapi", "/mapi", IDLE_LONG, false, Affinity::None),
        service("oab", "/OAB", IDLE, true, Affinity::None),
        internal_only(service(
            "powershell",
            "/PowerShell",
            IDLE,
            true,
            pick(Affinity::SourceIp),
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(services: &[ServiceConfig], name: &str) -> ServiceConfig {
        services.iter().find(|s| s.name == name).unwrap().clone()
    }

    #[test]
    fn exchange2013_is_stateless() {
        let s = exchange_profile(Profile::Exchange2013);
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "owa",
                "ecp",
                "ews",
                "eas",
                "autodiscover",
                "rpc",
                "mapi",
                "oab",
                "powershell"
            ]
        );
        assert!(s.iter().all(|s| s.affinity == Affinity::None));
        assert!(s.iter().all(|s| s.response_timeout == RESPONSE));
        assert!(s
            .iter()
            .all(|s| s.health == format!("{}/healthcheck.htm", s.prefix)));
        let rewritten: Vec<_> = s
            .iter()
            .filter(|s| s.rewrite)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            rewritten,
            ["owa", "ecp", "autodiscover", "oab", "powershell"]
        );
        assert_eq!(find(&s, "rpc").idle_timeout, IDLE_LONG);
        assert_eq!(find(&s, "mapi").idle_timeout, IDLE_LONG);
        assert_eq!(find(&s, "owa").idle_timeout, IDLE);
        assert_eq!(find(&s, "eas").prefix, "/Microsoft-Server-ActiveSync");
        assert_eq!(find(&s, "ews").health, "/EWS/healthcheck.htm");
        assert_eq!(find(&s, "powershell").allow_from, Some(Cidr::internal()));
        assert!(s
            .iter()
            .filter(|s| s.name != "powershell")
            .all(|s| s.allow_from.is_none()));
    }

    #[test]
    fn exchange2010_follows_microsoft_affinity_advice() {
        let s = exchange_profile(Profile::Exchange2010);
        let affinity = |n| find(&s, n).affinity;
        assert_eq!(affinity("owa"), Affinity::Cookie);
        assert_eq!(affinity("ecp"), Affinity::Cookie);
        assert_eq!(affinity("ews"), Affinity::Cookie);
        assert_eq!(affinity("rpc"), Affinity::SourceIp);
        assert_eq!(affinity("powershell"), Affinity::SourceIp);
        assert_eq!(affinity("eas"), Affinity::Header("authorization".into()));
        for n in ["autodiscover", "oab", "mapi"] {
            assert_eq!(affinity(n), Affinity::None, "{n}");
        }
    }

    #[test]
    fn profile_names_round_trip() {
        for p in [Profile::Exchange2013, Profile::Exchange2010] {
            assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        }
        assert_eq!(Profile::default(), Profile::Exchange2013);
        assert!("exchange2016".parse::<Profile>().is_err());
    }
}

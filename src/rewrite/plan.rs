//! What to rewrite for one configuration: the members' names and addresses,
//! the array's names, and each database's RPC client access server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;

use super::patterns::{Matcher, Needle, NeedleKind};
use super::stream::StreamRewriter;

/// How one member names itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    /// The config name (`EX1`), as in `cn=Servers/cn=EX1`.
    pub name: String,
    /// What the member calls itself (`ex1.lab.local`).
    pub fqdn: String,
    /// Where the array reaches it; found in bodies with and without the port.
    pub address: SocketAddr,
}

/// Everything the rewriters need, built once per configuration and shared.
///
/// Every member name, fqdn and address (`127.0.0.1:9001`, `127.0.0.1`,
/// `[::1]:9001`, `[::1]`, `::1`) becomes the public name; inside a
/// `<ServerDN>` they become the array name.
#[derive(Debug)]
pub struct RewritePlan {
    public_name: String,
    array_name: String,
    to_public: Arc<Matcher>,
    to_array: Arc<Matcher>,
    /// Member names and fqdns, lowercased.
    hosts: Vec<String>,
    ips: Vec<IpAddr>,
    databases: Vec<(String, Option<String>)>,
}

impl RewritePlan {
    /// Builds the plan. `public_name` is what member names become (the
    /// first public name of the array); `array_name` is the array's
    /// `name`, used in `ServerDN`; `databases` pairs each database name with
    /// its RPC client access server (`None`: unset).
    pub fn new(
        members: &[MemberIdentity],
        public_name: &str,
        array_name: &str,
        databases: &[(String, Option<String>)],
    ) -> Self {
        let mut needles = Vec::new();
        let mut hosts = Vec::new();
        let mut ips = Vec::new();
        for m in members {
            for host in [&m.name, &m.fqdn] {
                let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
                needles.push(Needle {
                    text: host.clone(),
                    kind: NeedleKind::Host,
                });
                // `https%3A%2F%2Fex1.lab.local%2Fowa` in a redirect's query.
                for escape in ["%2f", "%3a", "%40"] {
                    needles.push(Needle {
                        text: format!("{escape}{host}"),
                        kind: NeedleKind::Escaped,
                    });
                }
                hosts.push(host);
            }
            needles.push(Needle {
                text: m.address.to_string(),
                kind: NeedleKind::Host,
            });
            let ip = m.address.ip();
            match ip {
                IpAddr::V4(v4) => needles.push(Needle {
                    text: v4.to_string(),
                    kind: NeedleKind::Host,
                }),
                IpAddr::V6(v6) => {
                    needles.push(Needle {
                        text: format!("[{v6}]"),
                        kind: NeedleKind::Host,
                    });
                    needles.push(Needle {
                        text: v6.to_string(),
                        kind: NeedleKind::Ipv6,
                    });
                }
            }
            ips.push(ip);
        }
        hosts.retain(|h| !h.is_empty());
        Self {
            public_name: public_name.to_owned(),
            array_name: array_name.to_owned(),
            to_public: Arc::new(Matcher::new(&needles, public_name)),
            to_array: Arc::new(Matcher::new(&needles, array_name)),
            hosts,
            ips,
            databases: databases.to_vec(),
        }
    }

    /// What member names become.
    pub fn public_name(&self) -> &str {
        &self.public_name
    }

    /// The array's name, used in `ServerDN`.
    pub fn array_name(&self) -> &str {
        &self.array_name
    }

    /// The RPC client access server of a database (name matched ignoring
    /// ASCII case); `None` when the database is unknown or its server unset.
    pub fn rpc_client_access_server(&self, database: &str) -> Option<&str> {
        self.databases
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(database))
            .and_then(|(_, server)| server.as_deref())
    }

    /// A fresh streaming rewriter (member names to the public name).
    pub fn stream_rewriter(&self) -> StreamRewriter {
        StreamRewriter::new(Arc::clone(&self.to_public))
    }

    /// Rewrites a whole text into `out`; returns the replacements made.
    pub fn rewrite(&self, text: &[u8], out: &mut BytesMut) -> usize {
        self.to_public.rewrite_all(text, out)
    }

    /// Whether `host` (an optional leading `.` and trailing `.` ignored) is
    /// a member's name or fqdn, ignoring ASCII case.
    pub fn is_member_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('.').trim_end_matches('.');
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `host` is a member's IP address (IPv6 with or without
    /// brackets).
    pub fn is_member_ip(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<IpAddr>()
            .is_ok_and(|ip| self.ips.contains(&ip))
    }

    pub(crate) fn to_public(&self) -> &Matcher {
        &self.to_public
    }

    pub(crate) fn to_array(&self) -> &Matcher {
        &self.to_array
    }
}

/// Whether `text` names a member (by name, fqdn or address, under the same
/// rules the rewriters use): what no answer through the array may do.
pub fn names_member(plan: &RewritePlan, text: &[u8]) -> bool {
    plan.to_public.finds_in(text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lab_plan() -> RewritePlan {
        RewritePlan::new(
            &[
                MemberIdentity {
                    name: "EX1".into(),
                    fqdn: "ex1.lab.local".into(),
                    address: "127.0.0.1:9001".parse().unwrap(),
                },
                MemberIdentity {
                    name: "EX2".into(),
                    fqdn: "ex2.lab.local".into(),
                    address: "[::1]:9002".parse().unwrap(),
                },
            ],
            "mail.lab.com",
            "CASARRAY01",
            &[
                ("DB01".into(), Some("outlook.lab.com".into())),
                ("DB02".into(), None),
            ],
        )
    }

    #[test]
    fn rewrites_hosts_inside_percent_escaped_urls() {
        let plan = lab_plan();
        let mut out = BytesMut::new();
        let text =
            b"/owa/auth/logon.aspx?url=https%3A%2F%2Fex1.lab.local%2Fowa%2F&u=a%40EX1&reason=0";
        assert_eq!(plan.rewrite(text, &mut out), 2);
        assert_eq!(
            &out[..],
            &b"/owa/auth/logon.aspx?url=https%3A%2F%2Fmail.lab.com%2Fowa%2F&u=a%40mail.lab.com&reason=0"[..]
        );
        assert!(!names_member(&plan, &out));
        // Not after any other escape or letter.
        let mut out = BytesMut::new();
        assert_eq!(
            plan.rewrite(b"%2Bex1.lab.local xex1.lab.local", &mut out),
            0
        );
    }

    #[test]
    fn every_member_identity_is_rewritten() {
        let plan = lab_plan();
        let text =
            b"EX1 ex1.lab.local 127.0.0.1:9001 127.0.0.1 EX2 EX2.LAB.LOCAL [::1]:9002 [::1] ::1";
        let mut out = BytesMut::new();
        assert_eq!(plan.rewrite(text, &mut out), 9);
        assert_eq!(&out[..], "mail.lab.com ".repeat(9).trim_end().as_bytes());
        assert!(names_member(&plan, text));
        assert!(!names_member(&plan, &out));
    }

    #[test]
    fn databases_are_looked_up_ignoring_case() {
        let plan = lab_plan();
        assert_eq!(
            plan.rpc_client_access_server("db01"),
            Some("outlook.lab.com")
        );
        assert_eq!(plan.rpc_client_access_server("DB02"), None);
        assert_eq!(plan.rpc_client_access_server("DB03"), None);
    }

    #[test]
    fn member_hosts_and_ips_are_recognised() {
        let plan = lab_plan();
        assert!(plan.is_member_host("ex1"));
        assert!(plan.is_member_host(".EX1.lab.local"));
        assert!(!plan.is_member_host("lab.local"));
        assert!(plan.is_member_ip("127.0.0.1"));
        assert!(plan.is_member_ip("[::1]"));
        assert!(!plan.is_member_ip("10.0.0.1"));
        assert!(!plan.is_member_ip("ex1"));
    }

    #[test]
    fn names_accessors() {
        let plan = lab_plan();
        assert_eq!(plan.public_name(), "mail.lab.com");
        assert_eq!(plan.array_name(), "CASARRAY01");
        let mut out = BytesMut::new();
        plan.to_array().rewrite_all(b"cn=EX2", &mut out);
        assert_eq!(&out[..], b"cn=CASARRAY01");
    }
}

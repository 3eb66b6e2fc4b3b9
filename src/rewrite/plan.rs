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

/// The port HTTPS URLs name when they name none.
const HTTPS_PORT: u16 = 443;

/// Everything the rewriters need, built once per configuration and shared.
///
/// Every member name, fqdn and address (`127.0.0.1:9001`, `127.0.0.1`,
/// `[::1]:9001`, `[::1]`, `::1`) becomes the public name; inside a
/// `<ServerDN>` they become the array name.
///
/// With a public port other than 443, an `https://` URL naming a member
/// (`https://ex1.lab.local/...`, `https://ex1.lab.local:443/...`,
/// `https://127.0.0.1:9001/...`, any case) becomes
/// `https://<public name>:<public port>/...`, and so does its
/// percent-escaped form for member names and fqdns
/// (`https%3A%2F%2Fex1.lab.local%2F...` to `...%3A8443%2F...`). Host names
/// outside a URL, URLs with another explicit port and `http://` URLs get
/// the public name alone, as with port 443.
#[derive(Debug)]
pub struct RewritePlan {
    public_name: String,
    public_port: u16,
    array_name: String,
    to_public: Arc<Matcher>,
    to_array: Arc<Matcher>,
    /// Member names and fqdns, lowercased.
    hosts: Vec<String>,
    ips: Vec<IpAddr>,
    databases: Vec<(String, Option<String>)>,
}

impl RewritePlan {
    /// Builds the plan for clients reaching the public name on port 443.
    /// `public_name` is what member names become (the first public name of
    /// the array); `array_name` is the array's `name`, used in `ServerDN`;
    /// `databases` pairs each database name with its RPC client access
    /// server (`None`: unset).
    pub fn new(
        members: &[MemberIdentity],
        public_name: &str,
        array_name: &str,
        databases: &[(String, Option<String>)],
    ) -> Self {
        Self::with_public_port(members, public_name, HTTPS_PORT, array_name, databases)
    }

    /// [`RewritePlan::new`] for clients reaching the public name on
    /// `public_port` (`[array] public_port`; 443 gives exactly what `new`
    /// gives).
    pub fn with_public_port(
        members: &[MemberIdentity],
        public_name: &str,
        public_port: u16,
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
        // ServerDN names the array, never a URL: no URL patterns there.
        let to_array = Matcher::new(&needles, array_name);
        if public_port != HTTPS_PORT {
            needles.extend(url_needles(members, public_name, public_port));
        }
        Self {
            public_name: public_name.to_owned(),
            public_port,
            array_name: array_name.to_owned(),
            to_public: Arc::new(Matcher::new(&needles, public_name)),
            to_array: Arc::new(to_array),
            hosts,
            ips,
            databases: databases.to_vec(),
        }
    }

    /// What member names become.
    pub fn public_name(&self) -> &str {
        &self.public_name
    }

    /// The port member URLs are given (443: none is written).
    pub fn public_port(&self) -> u16 {
        self.public_port
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

/// The URL patterns for a public port other than 443: `https://` and each
/// member name, fqdn, IP address (bracketed for IPv6) alone or with `:443`,
/// and each address with its own port; the percent-escaped forms of the
/// names and fqdns (as a URL in a query string writes them). Hosts that are
/// the public name itself are left out, as the host patterns leave it out.
fn url_needles(members: &[MemberIdentity], public_name: &str, port: u16) -> Vec<Needle> {
    let plain = NeedleKind::Url { port };
    let escaped = NeedleKind::EscapedUrl { port };
    let mut needles = Vec::new();
    let mut push = |text: String, kind: NeedleKind| needles.push(Needle { text, kind });
    let own = |host: &str| !host.is_empty() && !host.eq_ignore_ascii_case(public_name);
    for m in members {
        for host in [&m.name, &m.fqdn] {
            let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if own(&host) {
                push(format!("https://{host}"), plain);
                push(format!("https://{host}:{HTTPS_PORT}"), plain);
                push(format!("https%3a%2f%2f{host}"), escaped);
                push(format!("https%3a%2f%2f{host}%3a{HTTPS_PORT}"), escaped);
            }
        }
        let ip = match m.address.ip() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        push(format!("https://{ip}"), plain);
        push(format!("https://{ip}:{HTTPS_PORT}"), plain);
        // The member's own endpoint (`https://127.0.0.1:9001`) is the array's.
        push(format!("https://{}", m.address), plain);
    }
    needles
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
        lab_plan_on(443)
    }

    /// The lab's plan for clients reaching the array on `public_port`.
    pub(crate) fn lab_plan_on(public_port: u16) -> RewritePlan {
        RewritePlan::with_public_port(
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
            public_port,
            "CASARRAY01",
            &[
                ("DB01".into(), Some("outlook.lab.com".into())),
                ("DB02".into(), None),
            ],
        )
    }

    fn rewritten(plan: &RewritePlan, text: &str) -> (String, usize) {
        let mut out = BytesMut::new();
        let n = plan.rewrite(text.as_bytes(), &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    /// (member text, with public port 443, with public port 8443); an
    /// empty expectation: unchanged.
    const URL_CASES: &[(&str, &str, &str)] = &[
        (
            "https://ex1.lab.local/EWS/Exchange.asmx",
            "https://mail.lab.com/EWS/Exchange.asmx",
            "https://mail.lab.com:8443/EWS/Exchange.asmx",
        ),
        (
            "HTTPS://EX1.Lab.Local:443/owa",
            "HTTPS://mail.lab.com:443/owa",
            "HTTPS://mail.lab.com:8443/owa",
        ),
        (
            "https://EX1/owa",
            "https://mail.lab.com/owa",
            "https://mail.lab.com:8443/owa",
        ),
        (
            "https://ex2.lab.local",
            "https://mail.lab.com",
            "https://mail.lab.com:8443",
        ),
        (
            "<a href=\"https://127.0.0.1:9001/x\">",
            "<a href=\"https://mail.lab.com/x\">",
            "<a href=\"https://mail.lab.com:8443/x\">",
        ),
        (
            "https://127.0.0.1/x",
            "https://mail.lab.com/x",
            "https://mail.lab.com:8443/x",
        ),
        (
            "https://127.0.0.1:443/",
            "https://mail.lab.com:443/",
            "https://mail.lab.com:8443/",
        ),
        (
            "https://[::1]:9002/",
            "https://mail.lab.com/",
            "https://mail.lab.com:8443/",
        ),
        (
            "https://[::1]/",
            "https://mail.lab.com/",
            "https://mail.lab.com:8443/",
        ),
        (
            "https://[::1]:443/",
            "https://mail.lab.com:443/",
            "https://mail.lab.com:8443/",
        ),
        // Another explicit port is the member's: kept.
        (
            "https://ex1.lab.local:444/x",
            "https://mail.lab.com:444/x",
            "https://mail.lab.com:444/x",
        ),
        (
            "https://ex1.lab.local:4430/",
            "https://mail.lab.com:4430/",
            "https://mail.lab.com:4430/",
        ),
        (
            "https://[::1]:9003/",
            "https://mail.lab.com:9003/",
            "https://mail.lab.com:9003/",
        ),
        // http:// is not the array's HTTPS port: the host only, as with 443.
        (
            "http://ex1.lab.local/x",
            "http://mail.lab.com/x",
            "http://mail.lab.com/x",
        ),
        (
            "http://127.0.0.1:9001/x",
            "http://mail.lab.com/x",
            "http://mail.lab.com/x",
        ),
        // Host names outside a URL get no port.
        (
            "<Server>ex1.lab.local</Server> cn=EX1",
            "<Server>mail.lab.com</Server> cn=mail.lab.com",
            "<Server>mail.lab.com</Server> cn=mail.lab.com",
        ),
        ("ex1.lab.local:443", "mail.lab.com:443", "mail.lab.com:443"),
        (
            "xhttps://EX1/",
            "xhttps://mail.lab.com/",
            "xhttps://mail.lab.com/",
        ),
        // A sentence's full stop after the URL; a rooted name in one.
        (
            "see https://EX1.",
            "see https://mail.lab.com.",
            "see https://mail.lab.com:8443.",
        ),
        (
            "https://ex1.lab.local./owa",
            "https://mail.lab.com./owa",
            "https://mail.lab.com./owa",
        ),
        // Other hosts, and URLs already on the array, stay.
        (
            "https://www.ex1.lab.local/ https://ex1.lab.localhost/",
            "",
            "",
        ),
        (
            "https://mail.lab.com/owa https://mail.lab.com:8443/owa",
            "",
            "",
        ),
        // Percent-escaped URLs in a query string, in either case.
        (
            "url=https%3A%2F%2Fex1.lab.local%2Fowa%2F&u=a%40EX1",
            "url=https%3A%2F%2Fmail.lab.com%2Fowa%2F&u=a%40mail.lab.com",
            "url=https%3A%2F%2Fmail.lab.com%3A8443%2Fowa%2F&u=a%40mail.lab.com",
        ),
        (
            "url=https%3a%2f%2fEX1%3a443%2f",
            "url=https%3a%2f%2fmail.lab.com%3a443%2f",
            "url=https%3a%2f%2fmail.lab.com%3a8443%2f",
        ),
        (
            "url=https%3A%2F%2Fex1.lab.local%3A444%2F",
            "url=https%3A%2F%2Fmail.lab.com%3A444%2F",
            "url=https%3A%2F%2Fmail.lab.com%3A444%2F",
        ),
        (
            "url=https%3A%2F%2Fex1.lab.local%3Fa",
            "url=https%3A%2F%2Fmail.lab.com%3Fa",
            "url=https%3A%2F%2Fmail.lab.com%3A8443%3Fa",
        ),
    ];

    #[test]
    fn https_urls_carry_a_public_port_other_than_443() {
        let (on_443, on_8443) = (lab_plan(), lab_plan_on(8443));
        for (text, want_443, want_8443) in URL_CASES {
            let want_443 = if want_443.is_empty() { text } else { want_443 };
            let want_8443 = if want_8443.is_empty() {
                text
            } else {
                want_8443
            };
            let (got, n) = rewritten(&on_443, text);
            assert_eq!(got, *want_443, "443: {text}");
            // As many replacements either way: one per name.
            assert_eq!(
                rewritten(&on_8443, text),
                (want_8443.to_string(), n),
                "8443: {text}"
            );
            assert!(!names_member(&on_8443, want_8443.as_bytes()), "{want_8443}");
        }
    }

    #[test]
    fn port_443_builds_what_new_builds() {
        let by_new = RewritePlan::new(
            &[MemberIdentity {
                name: "EX1".into(),
                fqdn: "ex1.lab.local".into(),
                address: "127.0.0.1:9001".parse().unwrap(),
            }],
            "mail.lab.com",
            "CASARRAY01",
            &[],
        );
        assert_eq!(by_new.public_port(), 443);
        assert_eq!(lab_plan().public_port(), 443);
        assert_eq!(lab_plan_on(8443).public_port(), 8443);
        // No URL patterns at 443: the hold-back is the longest name's.
        let hold = |p: &RewritePlan| p.stream_rewriter().max_held_back();
        assert_eq!(hold(&by_new), "%2fex1.lab.local".len() + 1);
        assert_eq!(hold(&lab_plan()), "%2fex1.lab.local".len() + 1);
        assert_eq!(
            hold(&lab_plan_on(8443)),
            "https%3a%2f%2fex1.lab.local%3a443".len() + 2
        );
        // ServerDN never gets a port.
        let mut out = BytesMut::new();
        lab_plan_on(8443)
            .to_array()
            .rewrite_all(b"cn=EX1 https://EX1/", &mut out);
        assert_eq!(&out[..], b"cn=CASARRAY01 https://CASARRAY01/");
    }

    #[test]
    fn the_public_name_as_a_member_host_gets_no_url_pattern() {
        let plan = RewritePlan::with_public_port(
            &[MemberIdentity {
                name: "EX1".into(),
                fqdn: "mail.lab.com".into(),
                address: "127.0.0.1:9001".parse().unwrap(),
            }],
            "mail.lab.com",
            8443,
            "CASARRAY01",
            &[],
        );
        assert_eq!(
            rewritten(&plan, "https://mail.lab.com/ https://EX1/"),
            ("https://mail.lab.com/ https://mail.lab.com:8443/".into(), 1)
        );
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

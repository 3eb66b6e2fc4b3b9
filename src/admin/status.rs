//! `casarray status --admin ADDR`: asks a running array's admin API for its
//! members and prints the members × services health table, then what is
//! wrong, in words.
//!
//! ```text
//! Array mail.lab.com (fqdn mail.lab.com, site Default-First-Site-Name)
//!
//! Member  State     Health    In flight  owa  ecp   ews
//! ------  -----     ------    ---------  ---  ---   ---
//! EX1     active    healthy           0  up   up    up
//! EX2     draining  degraded         12  up   DOWN  up
//!
//! EX2 is draining: it gets no new request; 12 still in flight.
//! EX2 ecp is down: last check 3s ago: 503 Service Unavailable
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Largest answer read: 4 MiB.
const MAX_BODY: usize = 4 << 20;

/// `casarray status`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StatusArgs {
    /// The running array's admin listener (`listen.admin`), as HOST:PORT or
    /// http://HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: String,
    /// How long to wait for the answers.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// Prints the status of the array whose admin API is at `args.admin`.
/// Fails when the admin API cannot be reached or answers something else.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let text = rt.block_on(status_text(&args.admin, args.timeout))?;
    print!("{text}");
    Ok(())
}

/// The status report of the array at `admin`, as `run` prints it.
pub async fn status_text(admin: &str, limit: Duration) -> anyhow::Result<String> {
    let addr = resolve(admin).await?;
    let fetch = async {
        let array: ArrayInfo = get_json(addr, "/api/array").await?;
        let members: Vec<MemberInfo> = get_json(addr, "/api/members").await?;
        anyhow::Ok((array, members))
    };
    let (array, members) = tokio::time::timeout(limit, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("admin API at {addr}: no answer within {limit:?}"))??;
    Ok(render(&array, &members, unix_ms()))
}

/// `/api/array`, the fields shown.
#[derive(Debug, Clone, Deserialize)]
struct ArrayInfo {
    name: String,
    fqdn: String,
    #[serde(default)]
    site: String,
    /// Service names in config order (absent from older arrays).
    #[serde(default)]
    services: Vec<String>,
}

/// One member of `/api/members`.
#[derive(Debug, Clone, Deserialize)]
struct MemberInfo {
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    in_flight: u64,
    #[serde(default)]
    services: BTreeMap<String, bool>,
    #[serde(default)]
    last_checks: BTreeMap<String, Check>,
}

#[derive(Debug, Clone, Deserialize)]
struct Check {
    at_unix_ms: i64,
    ok: bool,
    #[serde(default)]
    detail: String,
}

/// The report: heading, table, then one line per thing worth knowing.
fn render(array: &ArrayInfo, members: &[MemberInfo], now_ms: i64) -> String {
    let mut services = array.services.clone();
    for m in members {
        for s in m.services.keys() {
            if !services.contains(s) {
                services.push(s.clone());
            }
        }
    }
    let mut out = format!("Array {} (fqdn {}", array.name, array.fqdn);
    if !array.site.is_empty() {
        out.push_str(&format!(", site {}", array.site));
    }
    out.push_str(")\n\n");
    if members.is_empty() {
        out.push_str("no members\n");
        return out;
    }

    let mut headers = vec!["Member", "State", "Health", "In flight"];
    headers.extend(services.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let mut row = vec![
                m.name.clone(),
                m.state.clone(),
                health_word(m, &services).to_owned(),
                m.in_flight.to_string(),
            ];
            row.extend(services.iter().map(|s| {
                match m.services.get(s) {
                    Some(true) => "up",
                    Some(false) => "DOWN",
                    None => "-",
                }
                .to_owned()
            }));
            row
        })
        .collect();
    out.push_str(&table(&headers, &rows, &[3]));

    let mut notes = Vec::new();
    for m in members {
        if m.state == "draining" {
            notes.push(format!(
                "{} is draining: it gets no new request; {} still in flight.",
                m.name, m.in_flight
            ));
        }
        for s in &services {
            if m.services.get(s) != Some(&false) {
                continue;
            }
            let why = match m.last_checks.get(s) {
                Some(c) if !c.ok => format!(
                    ": last check {} ago: {}",
                    age(now_ms - c.at_unix_ms),
                    c.detail
                ),
                Some(c) => format!(
                    " (taken out on a failed request; last check {} ago passed)",
                    age(now_ms - c.at_unix_ms)
                ),
                None => String::new(),
            };
            notes.push(format!("{} {s} is down{why}", m.name));
        }
    }
    for s in &services {
        let serving = members
            .iter()
            .filter(|m| m.state != "draining" && m.services.get(s) == Some(&true))
            .count();
        if serving == 0 {
            notes.push(format!(
                "{s}: NO member can take requests: clients get 503."
            ));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

/// `healthy` (every service up), `down` (none), `degraded` (some).
fn health_word(m: &MemberInfo, services: &[String]) -> &'static str {
    let known: Vec<bool> = services
        .iter()
        .filter_map(|s| m.services.get(s).copied())
        .collect();
    if known.iter().all(|&up| up) {
        "healthy"
    } else if known.iter().all(|&up| !up) {
        "down"
    } else {
        "degraded"
    }
}

/// `850ms`, `12s`, `3m`, `2h`.
fn age(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=119_999 => format!("{}s", ms / 1_000),
        120_000..=7_199_999 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

/// Columns padded to their widest cell; those in `right` aligned right.
fn table(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if right.contains(&i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let dashes: Vec<String> = headers
        .iter()
        .map(|h| "-".repeat(h.chars().count()))
        .collect();
    let mut out = line(&head);
    out.push_str(&line(&dashes));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// `HOST:PORT`, `http://HOST:PORT/` or a wildcard listen address (taken as
/// loopback) to one socket address.
async fn resolve(admin: &str) -> anyhow::Result<SocketAddr> {
    let hostport = admin
        .strip_prefix("http://")
        .unwrap_or(admin)
        .trim_end_matches('/');
    let addr = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("--admin {admin}: not a HOST:PORT address"))?
        .next()
        .with_context(|| format!("--admin {admin}: the name has no address"))?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// GET `path` on the admin API at `addr` and parse the JSON answer.
async fn get_json<T: DeserializeOwned>(addr: SocketAddr, path: &str) -> anyhow::Result<T> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("cannot reach the admin API at {addr} (is the array running? see listen.admin)")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("admin API at {addr}"))?;
    let conn = tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("admin API at {addr}: GET {path}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("admin API at {addr}: GET {path}: {e}"))?
        .to_bytes();
    conn.abort();
    if !status.is_success() {
        anyhow::bail!(
            "admin API at {addr}: GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("admin API at {addr}: GET {path}: unexpected answer"))
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array() -> ArrayInfo {
        serde_json::from_str(
            r#"{"name":"mail.lab.com","fqdn":"mail.lab.com","site":"Default-First-Site-Name",
                "members":["EX1","EX2"],"services":["owa","ecp","ews"]}"#,
        )
        .unwrap()
    }

    fn members() -> Vec<MemberInfo> {
        serde_json::from_str(
            r#"[{"name":"EX1","state":"active","healthy":true,"in_flight":0,
                 "services":{"owa":true,"ecp":true,"ews":true},"last_checks":{}},
                {"name":"EX2","state":"draining","healthy":false,"in_flight":12,
                 "services":{"owa":true,"ecp":false,"ews":true},
                 "last_checks":{"ecp":{"at_unix_ms":1000,"ok":false,"detail":"503 Service Unavailable"}}}]"#,
        )
        .unwrap()
    }

    #[test]
    fn renders_the_table_and_what_is_wrong() {
        let text = render(&array(), &members(), 4_000);
        let expected = "\
Array mail.lab.com (fqdn mail.lab.com, site Default-First-Site-Name)

Member  State     Health    In flight  owa  ecp   ews
------  -----     ------    ---------  ---  ---   ---
EX1     active    healthy           0  up   up    up
EX2     draining  degraded         12  up   DOWN  up

EX2 is draining: it gets no new request; 12 still in flight.
EX2 ecp is down: last check 3s ago: 503 Service Unavailable
";
        assert_eq!(text, expected);
    }

    #[test]
    fn says_when_a_service_has_no_member() {
        let mut m = members();
        m[0].services.insert("ecp".into(), false);
        let text = render(&array(), &m, 4_000);
        assert!(text.contains("ecp: NO member can take requests"), "{text}");
        assert!(text.contains("EX1 ecp is down\n"), "{text}");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(-5), "0ms");
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_345), "12s");
        assert_eq!(age(600_000), "10m");
        assert_eq!(age(7_200_000), "2h");
    }

    #[tokio::test]
    async fn resolves_the_usual_spellings() {
        let want: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for a in ["127.0.0.1:9090", "http://127.0.0.1:9090/", "0.0.0.0:9090"] {
            assert_eq!(resolve(a).await.unwrap(), want, "{a}");
        }
        assert!(resolve("no-port").await.is_err());
    }

    #[tokio::test]
    async fn nothing_listening_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = status_text(&addr.to_string(), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot reach the admin API"),
            "{e:#}"
        );
    }
}

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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::api::client::AdminClient;
use crate::api::{ArrayView, ClusterStatusView, DatabaseView, MemberState, MemberView};

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
    let client = AdminClient::resolve(admin, limit).await?;
    let array: ArrayView = client.get("/api/array").await?;
    let members: Vec<MemberView> = client.get("/api/members").await?;
    let databases: Vec<DatabaseView> = client.get("/api/databases").await?;
    let mut text = render(&array, &members, unix_ms());
    text.push_str(&render_databases(&databases));
    if let Some(cluster) = &array.cluster {
        text.push_str(&render_cluster(cluster, unix_ms()));
    }
    Ok(text)
}

/// With `[cluster]`: etcd, whether this instance follows it, and the
/// instances registered.
fn render_cluster(c: &ClusterStatusView, now_ms: i64) -> String {
    let mut out = format!(
        "\nCluster {} on etcd {}: {}\n",
        c.prefix,
        c.endpoints.join(", "),
        if c.connected {
            format!("connected (revision {})", c.revision)
        } else {
            "NOT CONNECTED: serving with the last known state, admin changes refused".to_owned()
        }
    );
    let rows: Vec<Vec<String>> = c
        .instances
        .iter()
        .map(|i| {
            let mut name = i.instance.clone();
            if i.instance == c.instance {
                name.push_str(" (this one)");
            }
            let started =
                now_ms.saturating_sub(i64::try_from(i.started_unix_ms).unwrap_or(i64::MAX));
            vec![
                name,
                i.https.clone(),
                i.admin.clone(),
                format!("{} ago", age(started)),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no instance registered\n");
    } else {
        out.push_str(&table(
            &["Instance", "HTTPS", "Admin", "Started"],
            &rows,
            &[],
        ));
    }
    out
}

/// The databases the array knows something about: each with its
/// RpcClientAccessServer (the effective one: with `[cluster]`, the
/// cluster's), and when the members run a DAG the member holding its active
/// copy and its copies' states; nothing when no database has either.
fn render_databases(databases: &[DatabaseView]) -> String {
    let rows: Vec<Vec<String>> = databases
        .iter()
        .filter(|d| !d.copies.is_empty() || d.rpc_client_access_server.is_some())
        .map(|d| {
            let copies: Vec<String> = d
                .copies
                .iter()
                .map(|c| {
                    let mut s = format!("{} {}", c.server, c.status);
                    if c.copy_queue > 0 || c.replay_queue > 0 {
                        s.push_str(&format!(" (queues {}/{})", c.copy_queue, c.replay_queue));
                    }
                    s
                })
                .collect();
            let active = match (&d.active, d.copies.is_empty()) {
                (Some(a), _) => a.clone(),
                (None, true) => "-".to_owned(),
                (None, false) => "NONE MOUNTED".to_owned(),
            };
            vec![
                d.name.clone(),
                active,
                d.failovers.to_string(),
                d.rpc_client_access_server
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                copies.join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    out.push_str(&table(
        &[
            "Database",
            "Active",
            "Failovers",
            "RpcClientAccessServer",
            "Copies",
        ],
        &rows,
        &[2],
    ));
    out
}

/// The report: heading, table, then one line per thing worth knowing.
fn render(array: &ArrayView, members: &[MemberView], now_ms: i64) -> String {
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
                m.state.to_string(),
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
        if m.state == MemberState::Draining {
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
            .filter(|m| m.state != MemberState::Draining && m.services.get(s) == Some(&true))
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
fn health_word(m: &MemberView, services: &[String]) -> &'static str {
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

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array() -> ArrayView {
        serde_json::from_str(
            r#"{"name":"mail.lab.com","fqdn":"mail.lab.com","site":"Default-First-Site-Name",
                "members":["EX1","EX2"],"services":["owa","ecp","ews"]}"#,
        )
        .unwrap()
    }

    fn members() -> Vec<MemberView> {
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
    fn shows_the_database_map_when_there_is_one() {
        let dbs: Vec<DatabaseView> = serde_json::from_str(
            r#"[{"name":"DB01","active":"EX1","failovers":0,"copies":[
                  {"server":"EX1","activation_preference":1,"status":"Mounted"},
                  {"server":"EX2","activation_preference":2,"status":"Healthy","copy_queue":3}]},
                {"name":"DB02","active":null,"failovers":2,"copies":[
                  {"server":"EX2","activation_preference":1,"status":"ServiceDown"}]},
                {"name":"DB03"},
                {"name":"DB04","rpc_client_access_server":"outlook.lab.com"}]"#,
        )
        .unwrap();
        let text = render_databases(&dbs[..3]);
        assert_eq!(
            text,
            "\n\
Database  Active        Failovers  RpcClientAccessServer  Copies
--------  ------        ---------  ---------------------  ------
DB01      EX1                   0  -                      EX1 Mounted, EX2 Healthy (queues 3/0)
DB02      NONE MOUNTED          2  -                      EX2 ServiceDown
"
        );
        assert_eq!(render_databases(&dbs[2..3]), "");
        let text = render_databases(&dbs[3..]);
        assert!(
            text.contains("DB04      -               0  outlook.lab.com"),
            "{text}"
        );
    }

    #[test]
    fn shows_the_cluster() {
        let c: ClusterStatusView = serde_json::from_str(
            r#"{"endpoints":["http://10.0.0.5:2379"],"prefix":"/casarray/mail.lab.com",
                "instance":"a","connected":true,"revision":42,
                "instances":[{"instance":"a","https":"10.0.0.1:443","admin":"127.0.0.1:9090","started_unix_ms":1000},
                             {"instance":"b","https":"10.0.0.2:443","admin":"127.0.0.1:9090","started_unix_ms":1000}]}"#,
        )
        .unwrap();
        let text = render_cluster(&c, 61_000);
        assert!(text.contains("Cluster /casarray/mail.lab.com on etcd http://10.0.0.5:2379: connected (revision 42)"), "{text}");
        assert!(text.contains("a (this one)"), "{text}");
        assert!(text.contains("10.0.0.2:443"), "{text}");
        let lost = ClusterStatusView {
            connected: false,
            ..c
        };
        assert!(render_cluster(&lost, 61_000).contains("NOT CONNECTED"));
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

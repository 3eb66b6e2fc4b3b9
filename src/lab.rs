//! `casarray lab`: a whole array in front of mock mailbox servers, in one
//! command, on embedded defaults.
//!
//! The first run makes DIR: a lab root CA, the shared certificate for the
//! array's fqdn and `autodiscover.<domain>` signed by it, an admin token,
//! `DIR/casarray.toml` (a real config that `casarray serve --config`
//! accepts on its own) and `DIR/dag.toml`, the database availability group
//! of the mock servers: DB01 (Local IT) active on EX1 with a copy on EX2,
//! DB02 (Global IT) active on EX2 with a copy on EX1 (with more servers,
//! each database has copies on up to three of them), the witness lease in
//! `DIR/witness.json` and which copy is active in `DIR/dag-state.json`.
//! Each server keeps its copies in `DIR/servers/EXn/`. Later runs reuse
//! DIR (a DIR of an older lab, with one shared mailbox store, is refused).
//! Each mock server is its own OS process, so killing one is losing a
//! server, and Active Manager moves its active databases to another.
//! Ctrl-C stops every process the lab started.
//!
//! With `--member-tls` the mock servers serve HTTPS with certificates the
//! lab CA issues for their fqdns (`DIR/certs/members/`, made when missing),
//! and the array verifies them (`tls = true`, `[member_tls] ca`).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::mock;
use crate::tls::pki;

/// `casarray lab` flags; defaults from DESIGN.md.
#[derive(clap::Args, Debug, Clone)]
pub struct LabArgs {
    /// Where the lab keeps its certificates, config and mailbox store.
    #[arg(long, default_value = "./lab")]
    pub dir: PathBuf,
    /// How many mock mailbox servers (EX1, EX2, ...).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub servers: u16,
    /// The array's HTTPS address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub https: SocketAddr,
    /// The admin API and metrics address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
    /// The array's name.
    #[arg(long, default_value = "mail.lab.com")]
    pub fqdn: String,
    /// Run the mock servers with HTTPS certificates issued by the lab CA,
    /// and have the array speak HTTPS to them and verify them against that
    /// CA. Default: plain HTTP to the servers (SSL offloading).
    #[arg(long)]
    pub member_tls: bool,
    /// The array's SMTP address (`listen.smtp`), balanced over the hub
    /// transport every mock server runs.
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub smtp: SocketAddr,
}

/// Runs the lab until Ctrl-C.
pub fn run(args: LabArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(lab(args))
}

/// The files of a lab directory.
struct LabFiles {
    dir: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    /// Where the servers' certificates go with `--member-tls`.
    member_certs: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    token: PathBuf,
    /// The shared mailbox store of older labs (refused).
    legacy_store: PathBuf,
    /// Where each server keeps its database copies (`servers/EX1`, ...).
    servers: PathBuf,
    dag: PathBuf,
    config: PathBuf,
}

impl LabFiles {
    fn new(dir: &Path, fqdn: &str) -> Self {
        let certs = dir.join("certs");
        LabFiles {
            dir: dir.to_path_buf(),
            ca_cert: certs.join("ca.crt"),
            ca_key: certs.join("ca.key"),
            member_certs: certs.join("members"),
            cert: certs.join(format!("{fqdn}.crt")),
            key: certs.join(format!("{fqdn}.key")),
            token: dir.join("admin.token"),
            legacy_store: dir.join("store"),
            servers: dir.join("servers"),
            dag: dir.join("dag.toml"),
            config: dir.join("casarray.toml"),
        }
    }
}

async fn lab(args: LabArgs) -> anyhow::Result<()> {
    let domain = args
        .fqdn
        .split_once('.')
        .map(|(_, d)| d.to_owned())
        .filter(|d| !d.is_empty())
        .with_context(|| {
            format!(
                "--fqdn {}: expected a name with a domain, like mail.lab.com",
                args.fqdn
            )
        })?;
    // Every fixed port first: a taken one is an error before anything starts.
    port_free(args.https, "--https")?;
    port_free(args.admin, "--admin")?;
    port_free(args.smtp, "--smtp")?;
    if args.https == args.admin {
        bail!("--https and --admin are the same address {}", args.https);
    }
    if args.smtp == args.https || args.smtp == args.admin {
        bail!("--smtp {} is also --https or --admin", args.smtp);
    }

    let files = LabFiles::new(&args.dir, &args.fqdn);
    let first_run = !files.config.exists();
    if first_run {
        make_lab_dir(&files, &args, &domain)?;
    } else {
        refuse_older_lab(&files)?;
        mock::ensure_dag_members(&files.dag, args.servers)
            .with_context(|| format!("cannot update {}", files.dag.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find the casarray executable")?;

    let mut procs = Procs::default();
    // The lesson's external mail system for test.com: mail it sends to
    // lab.com goes through the array's SMTP address.
    let mut cmd = Command::new(&exe);
    cmd.arg("mock-external")
        .args(["--domain", EXTERNAL_DOMAIN, "--store"])
        .arg(files.dir.join("external"))
        .arg("--relay")
        .arg(args.smtp.to_string());
    let external = match start(cmd, "external system", "(external): SMTP ").await {
        Ok((child, _, line)) => {
            println!("  {line}");
            procs.0.push(("external".into(), child));
            match parse_external(&line) {
                Some(addrs) => addrs,
                None => {
                    procs.stop().await;
                    bail!("the external system reported no addresses: {line}");
                }
            }
        }
        Err(e) => return Err(e),
    };
    let mut members = Vec::new();
    let mut hubs = Vec::new();
    for i in 1..=args.servers {
        let name = format!("EX{i}");
        let fqdn = format!("ex{i}.lab.local");
        let member_tls = match args.member_tls.then(|| member_cert(&files, &fqdn)) {
            Some(Ok(files)) => Some(files),
            Some(Err(e)) => {
                procs.stop().await;
                return Err(e);
            }
            None => None,
        };
        let mut cmd = Command::new(&exe);
        cmd.arg("mock-server")
            .args(["--name", &name, "--listen", "127.0.0.1:0", "--fqdn", &fqdn])
            .arg("--store")
            .arg(files.servers.join(&name))
            .arg("--dag")
            .arg(&files.dag)
            .arg("--shared-cert")
            .arg(&files.cert)
            .arg("--shared-key")
            .arg(&files.key)
            .args(["--smtp", "127.0.0.1:0", "--smtp-route"])
            .arg(format!("{EXTERNAL_DOMAIN}={}", external.0))
            .arg("--transport-dir")
            .arg(files.dir.join("transport"));
        if let Some((cert, key)) = &member_tls {
            cmd.arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key)
                .arg("--peer-ca")
                .arg(&files.ca_cert);
        }
        let (child, before, line) = match start(cmd, &name, "listening on ").await {
            Ok(started) => started,
            Err(e) => {
                procs.stop().await;
                return Err(e);
            }
        };
        let addr: SocketAddr = match line
            .rsplit("listening on ")
            .next()
            .and_then(|a| a.trim().parse().ok())
        {
            Some(a) => a,
            None => {
                procs.stop().await;
                bail!("{name} reported no address: {line}");
            }
        };
        let smtp = before
            .iter()
            .find_map(|l| {
                l.rsplit(" smtp on ")
                    .next()
                    .filter(|_| l.contains(" smtp on "))
            })
            .and_then(|a| a.trim().parse::<SocketAddr>().ok());
        let Some(smtp) = smtp else {
            procs.0.push((name.clone(), child));
            procs.stop().await;
            bail!("{name} reported no SMTP address");
        };
        println!(
            "  {name:<4} pid {:<7} on {}://{addr}  ({fqdn}), smtp {smtp}",
            child.id().unwrap_or(0),
            if args.member_tls { "https" } else { "http" }
        );
        procs.0.push((name.clone(), child));
        members.push((name, addr, fqdn));
        hubs.push(smtp);
    }

    if let Err(e) = update_config(&files, &args, &members, &hubs) {
        procs.stop().await;
        return Err(e);
    }
    let mut cmd = Command::new(&exe);
    cmd.arg("serve").arg("--config").arg(&files.config);
    let (array, _, _ready) = match start(cmd, "casarray serve", "casarray serving ").await {
        Ok(started) => started,
        Err(e) => {
            procs.stop().await;
            return Err(e);
        }
    };
    procs.0.push(("array".into(), array));
    let copies = dag_settled(&files, &args, &members).await;
    let dag = dag_text(&files, &args, &members, &procs, copies.as_ref());
    let mail = mail_text(&args, external);
    print_welcome(&files, &args, &members, first_run, &format!("{dag}{mail}"));

    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let result = loop {
        tokio::select! {
            _ = int.recv() => break Ok(()),
            _ = term.recv() => break Ok(()),
            exited = procs.wait_any() => {
                let (name, status) = exited;
                if name == "array" {
                    break Err(anyhow::anyhow!("the array exited ({status}); stopping the lab"));
                }
                println!("{name} exited ({status}): the array carries on with the others");
            }
        }
    };
    println!("stopping the lab...");
    procs.stop().await;
    result
}

/// The external system's domain (the lesson's test.com).
const EXTERNAL_DOMAIN: &str = "test.com";

/// The SMTP and POP3 addresses in the external system's readiness line
/// (`test.com (external): SMTP A, POP3 B`).
fn parse_external(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.split("(external): SMTP ").nth(1)?;
    let (smtp, pop3) = rest.split_once(", POP3 ")?;
    Some((smtp.trim().parse().ok()?, pop3.trim().parse().ok()?))
}

/// How to send mail through the array and read the external mailbox.
fn mail_text(args: &LabArgs, (ext_smtp, ext_pop3): (SocketAddr, SocketAddr)) -> String {
    let smtp = args.smtp;
    let (ip, port) = (smtp.ip(), smtp.port());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  Hub Transport (SMTP through the array on {smtp}; every server runs a hub):"
    );
    let _ = writeln!(
        s,
        "    send:   printf 'Subject: hello\\r\\nMessage-ID: <hello-1@test.com>\\r\\n\\r\\nHi Alice\\r\\n' | curl -sS smtp://{ip}:{port} --mail-from carol@test.com --mail-rcpt alice@lab.com -T -"
    );
    let _ = writeln!(
        s,
        "    or:     python3 -c 'import smtplib; smtplib.SMTP(\"{ip}\", {port}).sendmail(\"carol@test.com\", [\"alice@lab.com\"], \"Subject: hello\\r\\n\\r\\nHi Alice\")'"
    );
    let _ = writeln!(
        s,
        "    out:    printf 'Subject: to carol\\r\\n\\r\\nHi\\r\\n' | curl -sS smtp://{ip}:{port} --mail-from alice@lab.com --mail-rcpt carol@{EXTERNAL_DOMAIN} -T -"
    );
    let _ = writeln!(
        s,
        "    {EXTERNAL_DOMAIN} (external): SMTP {ext_smtp}, POP3 {ext_pop3}; carol@{EXTERNAL_DOMAIN} password Carol!test1"
    );
    let _ = writeln!(
        s,
        "    read:   curl -sS -u 'carol:Carol!test1' pop3://{ext_pop3}/     (list; .../1 reads the first: its Received: lines name the hub)"
    );
    s
}

/// A bound-then-released check that nobody holds `addr`.
fn port_free(addr: SocketAddr, flag: &str) -> anyhow::Result<()> {
    TcpListener::bind(addr).map(drop).with_context(|| {
        format!("{addr} ({flag}) is already in use: stop what holds it or pass another {flag}")
    })
}

/// First run: CA, shared certificate, token, config.
fn make_lab_dir(files: &LabFiles, args: &LabArgs, domain: &str) -> anyhow::Result<()> {
    let certs_dir = files.ca_cert.parent().unwrap_or(&files.dir);
    std::fs::create_dir_all(certs_dir)
        .with_context(|| format!("cannot create {}", certs_dir.display()))?;
    let ca = pki::new_ca("casarray lab root CA").context("cannot make the lab CA")?;
    let autodiscover = format!("autodiscover.{domain}");
    let req =
        pki::request(&args.fqdn, &[autodiscover]).context("cannot make the certificate request")?;
    let leaf = pki::issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 825)
        .context("cannot issue the shared certificate")?;
    write_file(&files.ca_cert, ca.cert_pem.as_bytes(), false)?;
    write_file(&files.ca_key, ca.key_pem.as_bytes(), true)?;
    write_file(
        &files.cert,
        format!("{leaf}{}", ca.cert_pem).as_bytes(),
        false,
    )?;
    write_file(&files.key, req.key_pem.as_bytes(), true)?;
    let token = random_token()?;
    write_file(&files.token, format!("{token}\n").as_bytes(), true)?;
    std::fs::create_dir_all(&files.servers)
        .with_context(|| format!("cannot create {}", files.servers.display()))?;
    write_file(
        &files.dag,
        mock::lab_dag_definition(args.servers).as_bytes(),
        false,
    )?;
    write_file(
        &files.config,
        initial_config(args, domain).as_bytes(),
        false,
    )?;
    Ok(())
}

fn initial_config(args: &LabArgs, domain: &str) -> String {
    let fqdn = &args.fqdn;
    let mut databases = String::new();
    for (db, label) in mock::LAB_DATABASES {
        let _ = write!(
            databases,
            "# {label}. Unset: Autodiscover names the mailbox server, as Exchange does\n\
             # until `casarray database set --all --rpc-client-access-server {fqdn}`.\n\
             [[database]]\nname = \"{db}\"\n\n"
        );
    }
    format!(
        r#"# casarray lab: written by `casarray lab` on its first run, reused after.
# `casarray lab` rewrites the [listen] addresses, [array] public_port (the
# --https port) and the [[member]] tables on every start; edit the rest freely.

[array]
name = "{fqdn}"
fqdn = "{fqdn}"
site = "Default-First-Site-Name"
public_names = ["{fqdn}", "autodiscover.{domain}"]

[listen]
https = "{https}"
admin = "{admin}"

[tls]
cert = "certs/{fqdn}.crt"
key = "certs/{fqdn}.key"

[admin]
token_file = "admin.token"

[health]
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

{databases}# [[member]] tables follow (managed by `casarray lab`).
"#,
        https = args.https,
        admin = args.admin,
    )
}

/// The certificate and key of the mock server `fqdn` for `--member-tls`,
/// issued by the lab CA on first use and reused after.
fn member_cert(files: &LabFiles, fqdn: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = files.member_certs.join(format!("{fqdn}.crt"));
    let key = files.member_certs.join(format!("{fqdn}.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {}: --member-tls needs the lab CA to issue the servers' certificates (remove {} for a new lab)",
                path.display(),
                files.dir.display()
            )
        })
    };
    let ca_cert = read(&files.ca_cert)?;
    let ca_key = read(&files.ca_key)?;
    std::fs::create_dir_all(&files.member_certs)
        .with_context(|| format!("cannot create {}", files.member_certs.display()))?;
    let req = pki::request(fqdn, &[])
        .with_context(|| format!("cannot make the certificate request of {fqdn}"))?;
    let leaf = pki::issue(&ca_cert, &ca_key, &req.csr_pem, 825)
        .with_context(|| format!("cannot issue the certificate of {fqdn}"))?;
    write_file(&key, req.key_pem.as_bytes(), true)?;
    write_file(&cert, format!("{leaf}{ca_cert}").as_bytes(), false)?;
    Ok((cert, key))
}

/// A DIR made by an older lab (one mailbox store shared by every server,
/// no `dag.toml`) is refused: its mail would not be in this lab's copies.
fn refuse_older_lab(files: &LabFiles) -> anyhow::Result<()> {
    if files.legacy_store.join("mailstore.sqlite").exists() || !files.dag.exists() {
        bail!(
            "{dir} was made by an older casarray lab (one mailbox store shared by every server, \
             {store}); this version runs the servers as a database availability group, each \
             with its own copies of the databases (dag.toml, servers/). Remove {dir} to make \
             a new lab there, or pass --dir for a new one",
            dir = files.dir.display(),
            store = files.legacy_store.display(),
        );
    }
    Ok(())
}

/// How long the lab waits for every database to have a mounted copy
/// before it prints their status: 30 s.
const DAG_SETTLE: Duration = Duration::from_secs(30);

/// Waits (at most 30 s) until the first server's view shows a mounted
/// copy of every database and every other copy healthy and caught up;
/// returns that view (or the last one seen).
async fn dag_settled(
    files: &LabFiles,
    args: &LabArgs,
    members: &[(String, SocketAddr, String)],
) -> Option<serde_json::Value> {
    let (name, addr, fqdn) = members.first()?;
    let tls = args
        .member_tls
        .then_some((files.ca_cert.as_path(), fqdn.as_str()));
    let deadline = tokio::time::Instant::now() + DAG_SETTLE;
    let mut last = None;
    loop {
        if let Ok(view) = mock::dag_status(name, *addr, tls).await {
            let settled = view["databases"].as_array().is_some_and(|dbs| {
                dbs.iter().all(|db| {
                    !db["mounted"].is_null()
                        && db["copies"].as_array().is_some_and(|copies| {
                            copies.iter().all(|c| {
                                (c["status"] == "Mounted" || c["status"] == "Healthy")
                                    && c["copy_queue"] == 0
                                    && c["replay_queue"] == 0
                            })
                        })
                })
            });
            last = Some(view);
            if settled {
                return last;
            }
        }
        if tokio::time::Instant::now() > deadline {
            println!(
                "  (the DAG has not mounted every database within 30 s; see the servers' messages)"
            );
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The copy status (as `Get-MailboxDatabaseCopyStatus` shows it) and how
/// to make DB02 fail over.
fn dag_text(
    files: &LabFiles,
    args: &LabArgs,
    members: &[(String, SocketAddr, String)],
    procs: &Procs,
    view: Option<&serde_json::Value>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  Database availability group ({}; witness {}):",
        files.dag.display(),
        files.dir.join("witness.json").display()
    );
    let _ = writeln!(
        s,
        "    {:<12} {:<13} {:>9} {:>11} {:>10}",
        "Copy", "Status", "CopyQueue", "ReplayQueue", "Preference"
    );
    let empty = Vec::new();
    let databases = view
        .and_then(|v| v["databases"].as_array())
        .unwrap_or(&empty);
    for db in databases {
        for c in db["copies"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                s,
                "    {:<12} {:<13} {:>9} {:>11} {:>10}",
                format!(
                    "{}\\{}",
                    db["name"].as_str().unwrap_or("?"),
                    c["server"].as_str().unwrap_or("?")
                ),
                c["status"].as_str().unwrap_or("?"),
                c["copy_queue"].to_string(),
                c["replay_queue"].to_string(),
                c["activation_preference"].to_string(),
            );
        }
    }
    let holder = databases
        .iter()
        .find(|db| db["name"] == "DB02")
        .and_then(|db| db["mounted"].as_str().or(db["active"].as_str()))
        .map(str::to_string);
    let watcher = members
        .iter()
        .find(|(name, _, _)| Some(name) != holder.as_ref());
    match (&holder, watcher) {
        (Some(holder), Some((name, addr, fqdn))) => {
            let pid = procs
                .0
                .iter()
                .find(|(n, _)| n == holder)
                .and_then(|(_, c)| c.id())
                .map_or_else(|| "<its pid>".to_string(), |p| p.to_string());
            let url = if args.member_tls {
                format!(
                    "curl --cacert {} --resolve {fqdn}:{port}:{ip} https://{fqdn}:{port}/mock/dag/status",
                    files.ca_cert.display(),
                    port = addr.port(),
                    ip = addr.ip()
                )
            } else {
                format!("curl http://{addr}/mock/dag/status")
            };
            let _ = writeln!(
                s,
                "  Watch DB02 move (Active Manager, AutoDatabaseMountDial GoodAvailability):"
            );
            let _ = writeln!(
                s,
                "    kill -9 {pid}    # {holder}, which holds DB02's active copy; within a few seconds:"
            );
            let _ = writeln!(s, "    {url}    # {name}'s view: DB02 mounted on {name}");
            let _ = writeln!(
                s,
                "    Bob (DB02) gets 503 with Retry-After until then; every server answers for every mailbox."
            );
        }
        _ => {
            let _ = writeln!(s, "  (one server: no other copy to fail over to)");
        }
    }
    s
}

/// Points the config at this run's addresses (and `[array] public_port` at
/// the --https port) and mock servers.
fn update_config(
    files: &LabFiles,
    args: &LabArgs,
    members: &[(String, SocketAddr, String)],
    hubs: &[SocketAddr],
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&files.config)
        .with_context(|| format!("cannot read {}", files.config.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", files.config.display()))?;
    let configured = doc
        .get("array")
        .and_then(|a| a.get("fqdn"))
        .and_then(|f| f.as_str())
        .unwrap_or_default()
        .to_owned();
    if !configured.eq_ignore_ascii_case(&args.fqdn) {
        bail!(
            "{} was made for {configured}, not {}: pass --dir for another lab",
            files.dir.display(),
            args.fqdn
        );
    }
    doc["listen"]["https"] = toml_edit::value(args.https.to_string());
    doc["listen"]["admin"] = toml_edit::value(args.admin.to_string());
    // Clients reach the lab on --https's port: the URLs the array writes
    // must name it (443 is the default; port 0 names nothing).
    if let Some(array) = doc.get_mut("array").and_then(|a| a.as_table_like_mut()) {
        match args.https.port() {
            0 | 443 => {
                array.remove("public_port");
            }
            port => {
                array.insert("public_port", toml_edit::value(i64::from(port)));
            }
        }
    }
    // Inbound SMTP through the array to the servers' hubs (the lesson's
    // NLB port rules), with PROXY v2 so that Received: names the client.
    if hubs.is_empty() {
        if let Some(listen) = doc.get_mut("listen").and_then(|l| l.as_table_like_mut()) {
            listen.remove("smtp");
        }
    } else {
        doc["listen"]["smtp"] = toml_edit::value(args.smtp.to_string());
        if doc.get("smtp").is_none() {
            let mut t = toml_edit::Table::new();
            t["health"] = toml_edit::value("ehlo");
            t["proxy_protocol"] = toml_edit::value(true);
            doc["smtp"] = toml_edit::Item::Table(t);
        }
    }
    let mut tables = toml_edit::ArrayOfTables::new();
    for (i, (name, addr, fqdn)) in members.iter().enumerate() {
        let mut t = toml_edit::Table::new();
        t["name"] = toml_edit::value(name.as_str());
        t["address"] = toml_edit::value(addr.to_string());
        t["fqdn"] = toml_edit::value(fqdn.as_str());
        if let Some(hub) = hubs.get(i) {
            t["smtp"] = toml_edit::value(hub.to_string());
        }
        if args.member_tls {
            t["tls"] = toml_edit::value(true);
        }
        tables.push(t);
    }
    if args.member_tls {
        // The servers' certificates come from the lab CA.
        let mut t = toml_edit::Table::new();
        t["ca"] = toml_edit::value("certs/ca.crt");
        doc["member_tls"] = toml_edit::Item::Table(t);
    }
    doc["member"] = toml_edit::Item::ArrayOfTables(tables);
    // The lab's servers run a DAG: the array learns it from them (mailbox
    // routing, /api/databases, copy-status).
    let mut dag = toml_edit::Table::new();
    dag["enabled"] = toml_edit::value(true);
    doc["dag"] = toml_edit::Item::Table(dag);
    let text = doc.to_string();
    crate::config::parse(&text, &files.config)?;
    write_file(&files.config, text.as_bytes(), false)
}

/// Writes a file whole (the crate's atomic writer); keys get mode 0600 from
/// creation.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let mode = if private {
        crate::atomic_file::PRIVATE
    } else {
        crate::atomic_file::Mode::Keep
    };
    crate::atomic_file::replace(path, bytes, mode)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for the admin token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts a child and waits (at most 30 s) for a stdout line containing
/// `ready`; the rest of its stdout is passed through.
async fn start(
    mut cmd: Command,
    name: &str,
    ready: &str,
) -> anyhow::Result<(Child, Vec<String>, String)> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut before = Vec::new();
    let wait = async {
        while let Some(line) = lines.next_line().await? {
            if line.contains(ready) {
                return Ok::<_, std::io::Error>(Some(line));
            }
            // The hub's address line is printed with the server's own.
            if !line.contains(" smtp on ") {
                println!("{line}");
            }
            before.push(line);
        }
        Ok(None)
    };
    let line = match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            bail!("{name} stopped before it was ready ({status}); see its messages above");
        }
        Err(_) => {
            let _ = child.kill().await;
            bail!("{name} was not ready within 30 s");
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
        }
    });
    Ok((child, before, line))
}

/// The processes the lab started, stopped together.
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Procs {
    /// The first child to exit; it is removed from the list.
    async fn wait_any(&mut self) -> (String, String) {
        if self.0.is_empty() {
            std::future::pending::<()>().await;
        }
        let waits = self.0.iter_mut().map(|(_, c)| Box::pin(c.wait()));
        let (status, i, _) = futures_util::future::select_all(waits).await;
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let (name, _) = self.0.remove(i);
        (name, status)
    }

    /// SIGTERM to everything, then SIGKILL to what is left after 10 s.
    async fn stop(&mut self) {
        for (_, child) in self.0.iter().rev() {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on a pid we started and have not reaped.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        for (name, child) in self.0.iter_mut().rev() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                println!("{name} did not stop within 10 s: killing it");
                let _ = child.kill().await;
            }
        }
        self.0.clear();
    }
}

fn print_welcome(
    files: &LabFiles,
    args: &LabArgs,
    members: &[(String, SocketAddr, String)],
    first_run: bool,
    dag: &str,
) {
    let fqdn = &args.fqdn;
    let port = args.https.port();
    let ip = args.https.ip();
    let ca = files.ca_cert.display();
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "casarray lab is up: the array {fqdn} in front of {} mailbox servers{}",
        members.len(),
        if first_run {
            format!(" (new lab in {})", files.dir.display())
        } else {
            format!(" (reusing {})", files.dir.display())
        }
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "  Outlook on the web:  https://{fqdn}:{port}/owa/   (map {fqdn} to {ip} in /etc/hosts; trust {ca})");
    let _ = writeln!(s, "  Try it:              curl --cacert {ca} --resolve {fqdn}:{port}:{ip} https://{fqdn}:{port}/owa/healthcheck.htm");
    let _ = writeln!(s, "  Mailboxes:");
    for (address, password, display, db) in mock::LAB_USERS {
        let _ = writeln!(
            s,
            "    {address:<16} password {password:<12} ({display}, database {db})"
        );
    }
    let _ = writeln!(s, "  Metrics:             http://{}/metrics", args.admin);
    let _ = writeln!(
        s,
        "  Members and health:  http://{}/api/members",
        args.admin
    );
    if args.member_tls {
        let _ = writeln!(
            s,
            "  To the servers:      HTTPS, their certificates verified against {ca}"
        );
    }
    let _ = writeln!(s, "  Admin token:         {}", files.token.display());
    let _ = writeln!(s, "  Config:              {}", files.config.display());
    let _ = writeln!(s);
    let _ = writeln!(s, "  Lose a server and watch failover:");
    let _ = writeln!(
        s,
        "    kill -9 <pid of EX1 above>; then curl http://{}/api/members",
        args.admin
    );
    let _ = writeln!(
        s,
        "  Point the databases at the array (Set-MailboxDatabase -RpcClientAccessServer):"
    );
    let _ = writeln!(
        s,
        "    casarray database set --config {} --all --rpc-client-access-server {fqdn}",
        files.config.display()
    );
    s.push_str(dag);
    let _ = writeln!(s);
    let _ = writeln!(s, "  Ctrl-C stops the array and every mailbox server.");
    println!("{s}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, https: &str) -> LabArgs {
        LabArgs {
            dir: dir.to_path_buf(),
            servers: 1,
            https: https.parse().unwrap(),
            admin: "127.0.0.1:9090".parse().unwrap(),
            fqdn: "mail.lab.com".into(),
            member_tls: false,
            smtp: "127.0.0.1:2525".parse().unwrap(),
        }
    }

    #[test]
    fn the_config_names_the_https_port_as_the_public_port() {
        let tmp = tempfile::tempdir().unwrap();
        let files = LabFiles::new(tmp.path(), "mail.lab.com");
        std::fs::create_dir_all(files.cert.parent().unwrap()).unwrap();
        for f in [&files.cert, &files.key, &files.token] {
            std::fs::write(f, "x").unwrap();
        }
        let first = args(tmp.path(), "127.0.0.1:8443");
        std::fs::write(&files.config, initial_config(&first, "lab.com")).unwrap();
        let members = [(
            "EX1".to_string(),
            "127.0.0.1:9001".parse().unwrap(),
            "ex1.lab.local".to_string(),
        )];
        let port_of = |files: &LabFiles| {
            let text = std::fs::read_to_string(&files.config).unwrap();
            crate::config::parse(&text, &files.config)
                .unwrap()
                .array
                .public_port
        };
        for (https, want) in [
            ("127.0.0.1:8443", 8443),
            ("127.0.0.1:9443", 9443),
            ("0.0.0.0:443", 443),
            ("127.0.0.1:0", 443),
            ("[::1]:8443", 8443),
        ] {
            update_config(&files, &args(tmp.path(), https), &members, &[]).unwrap();
            assert_eq!(port_of(&files), want, "{https}");
        }
        update_config(&files, &args(tmp.path(), "0.0.0.0:443"), &members, &[]).unwrap();
        let text = std::fs::read_to_string(&files.config).unwrap();
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("public_port")),
            "{text}"
        );
    }

    #[test]
    fn the_config_balances_smtp_over_the_hubs() {
        let tmp = tempfile::tempdir().unwrap();
        let files = LabFiles::new(tmp.path(), "mail.lab.com");
        std::fs::create_dir_all(files.cert.parent().unwrap()).unwrap();
        for f in [&files.cert, &files.key, &files.token] {
            std::fs::write(f, "x").unwrap();
        }
        let a = args(tmp.path(), "127.0.0.1:8443");
        std::fs::write(&files.config, initial_config(&a, "lab.com")).unwrap();
        let members = [
            (
                "EX1".to_string(),
                "127.0.0.1:9001".parse().unwrap(),
                "ex1.lab.local".to_string(),
            ),
            (
                "EX2".to_string(),
                "127.0.0.1:9002".parse().unwrap(),
                "ex2.lab.local".to_string(),
            ),
        ];
        let hubs: [SocketAddr; 2] = [
            "127.0.0.1:2501".parse().unwrap(),
            "127.0.0.1:2502".parse().unwrap(),
        ];
        update_config(&files, &a, &members, &hubs).unwrap();
        let text = std::fs::read_to_string(&files.config).unwrap();
        let cfg = crate::config::parse(&text, &files.config).unwrap();
        assert_eq!(cfg.listen.smtp, Some(a.smtp));
        assert!(cfg.smtp.proxy_protocol, "{text}");
        assert_eq!(cfg.members[1].smtp, Some(hubs[1]));
        assert_eq!(
            parse_external("test.com (external): SMTP 127.0.0.1:1, POP3 127.0.0.1:2"),
            Some((
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap()
            ))
        );
    }
}

//! Issue 15, the mock side: a database availability group of real
//! `casarray mock-server --dag` processes on 127.0.0.1. Log shipping to a
//! passive copy, proxying to the server with the active copy, a kill -9
//! of the active server while Bob works (failover, what was kept, what was
//! lost), a lossy failover and the returning server's resynchronisation, a
//! suspended copy behind the mount dial, SIGSTOP/SIGCONT of the active
//! server (never two mounted copies), and a copy added on a third server.
//!
//! Every wait polls a condition with a generous bound (CI has 2 shared
//! cores); the tests of this file run one at a time so that their
//! heartbeats do not starve each other. Figures are printed (run with
//! `--nocapture` to see them).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dag::{copy, db, status, status_within, wait_settled, TestDag, CALL, SETTLE};
use support::{http_call, wait_until, Reply};

/// The tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bound on a failover, a resync, a switchover: 60 s.
const MOVE: Duration = Duration::from_secs(60);

const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");
const BOB: (&str, &str) = ("bob@lab.com", "Bob!lab1");

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---- EWS -----------------------------------------------------------------

fn basic(user: (&str, &str)) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.0, user.1))
    )
}

fn soap(operation: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" \
         xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\">\
         <soap:Body>{operation}</soap:Body></soap:Envelope>"
    )
}

fn send_to(to: &str, subject: &str) -> String {
    soap(&format!(
        "<m:CreateItem MessageDisposition=\"SendOnly\"><m:Items><t:Message>\
         <t:Subject>{subject}</t:Subject><t:Body BodyType=\"Text\">x</t:Body>\
         <t:ToRecipients><t:Mailbox><t:EmailAddress>{to}</t:EmailAddress></t:Mailbox></t:ToRecipients>\
         </t:Message></m:Items></m:CreateItem>"
    ))
}

fn find(subject: &str) -> String {
    soap(&format!(
        "<m:FindItem Traversal=\"Shallow\"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>\
         <m:IndexedPageItemView MaxEntriesReturned=\"1\" Offset=\"0\" BasePoint=\"Beginning\"/>\
         <m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
         <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{subject}\"/></t:Contains></m:Restriction>\
         <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds></m:FindItem>"
    ))
}

async fn ews(
    addr: SocketAddr,
    user: (&str, &str),
    body: &str,
    limit: Duration,
) -> anyhow::Result<Reply> {
    let auth = basic(user);
    http_call(
        addr,
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", &auth),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        body,
        limit,
    )
    .await
}

/// The log generation an acknowledged send was written as.
fn generation(reply: &Reply) -> Option<u64> {
    reply
        .header("x-mock-log-generation")
        .rsplit(':')
        .next()
        .and_then(|g| g.parse().ok())
}

/// Sends until acknowledged (a 503 while a database has no mounted copy is
/// retried); returns the answer.
async fn send_acked(addr: SocketAddr, user: (&str, &str), to: &str, subject: &str) -> Reply {
    let deadline = Instant::now() + MOVE;
    loop {
        if let Ok(r) = ews(addr, user, &send_to(to, subject), CALL).await {
            if r.status == 200 && r.body.contains("ResponseClass=\"Success\"") {
                return r;
            }
            assert!(
                r.status == 503 || r.body.contains("ErrorMailboxStoreUnavailable"),
                "{subject}: {} {}",
                r.status,
                r.body
            );
        }
        assert!(Instant::now() < deadline, "{subject} never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many inbox items of `user` have `subject` in their subject (per
/// FindItem at `addr`), or `None` when the server does not answer 200.
async fn count(addr: SocketAddr, user: (&str, &str), subject: &str) -> Option<usize> {
    let r = ews(addr, user, &find(subject), CALL).await.ok()?;
    if r.status != 200 {
        return None;
    }
    r.body
        .split("TotalItemsInView=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// Subjects of `mailbox`'s inbox items in a copy file, read directly.
fn subjects_in_copy(file: &Path, mailbox: &str) -> Vec<String> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        conn.prepare("SELECT subject FROM items WHERE mailbox = ?1 AND folder = 'inbox'")
    else {
        return Vec::new();
    };
    stmt.query_map([mailbox], |r| r.get::<_, String>(0))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

// ---- never two mounted copies -----------------------------------------------

/// Every `Mounted` claim a server made about its own copy of a database:
/// (server, mounted since) -> (first seen at, last seen at), by the
/// servers' clock (one host, one clock).
#[derive(Default)]
struct Claims {
    seen: Mutex<BTreeMap<(String, u64), (u64, u64)>>,
    /// Polls in which two servers answered `Mounted` for the database.
    both_in_one_poll: AtomicU64,
    polls: AtomicU64,
}

impl Claims {
    /// The claims of different servers that overlap in time.
    fn overlaps(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let list: Vec<_> = seen.iter().collect();
        let mut out = Vec::new();
        for (i, ((a, a_since), (_, a_last))) in list.iter().enumerate() {
            for ((b, b_since), (_, b_last)) in &list[i + 1..] {
                if a != b && *a_since <= *b_last && *b_since <= *a_last {
                    out.push(format!(
                        "{a} mounted [{a_since}, {a_last}] and {b} mounted [{b_since}, {b_last}]"
                    ));
                }
            }
        }
        out
    }
}

/// Polls every server of `servers` for its own claim on `database` until
/// `stop`, every 50 ms (a stopped server simply does not answer).
fn watch_mounts(
    servers: Vec<(String, SocketAddr)>,
    database: &'static str,
    stop: Arc<AtomicBool>,
) -> (Arc<Claims>, tokio::task::JoinHandle<()>) {
    let claims = Arc::new(Claims::default());
    let c = Arc::clone(&claims);
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let polls = servers.iter().map(|(name, addr)| {
                let name = name.clone();
                async move {
                    let v = status_within(*addr, Duration::from_millis(500)).await?;
                    let d = v["databases"]
                        .as_array()?
                        .iter()
                        .find(|d| d["name"] == database)?
                        .clone();
                    let own = d["copies"]
                        .as_array()?
                        .iter()
                        .find(|c| c["server"] == name.as_str())?
                        .clone();
                    (own["status"] == "Mounted").then(|| {
                        (
                            name,
                            d["mounted_since_unix_ms"].as_u64().unwrap_or(0),
                            v["at_unix_ms"].as_u64().unwrap_or(0),
                        )
                    })
                }
            });
            let found: Vec<_> = futures_util::future::join_all(polls)
                .await
                .into_iter()
                .flatten()
                .collect();
            c.polls.fetch_add(1, Ordering::Relaxed);
            if found.len() > 1 {
                c.both_in_one_poll.fetch_add(1, Ordering::Relaxed);
            }
            {
                let mut seen = c.seen.lock().unwrap();
                for (name, since, at) in found {
                    let e = seen.entry((name, since)).or_insert((at, at));
                    e.0 = e.0.min(at);
                    e.1 = e.1.max(at);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (claims, task)
}

// ---- tests ---------------------------------------------------------------

/// A message to Alice (DB01, active on EX1) reaches EX2's passive copy;
/// requests for a mailbox whose database is active elsewhere are proxied
/// (X-BEServer); the directory and the status have their shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_ship_to_the_passive_copy_and_requests_are_proxied() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let (ex1, ex2) = (dag.addr("EX1"), dag.addr("EX2"));

    // The directory: GUIDs and databases, the same on every server.
    let r = http_call(ex1, "GET", "/mock/directory", &[], "", CALL)
        .await
        .unwrap();
    let directory: Value = serde_json::from_str(&r.body).unwrap();
    let r2 = http_call(ex2, "GET", "/mock/directory", &[], "", CALL)
        .await
        .unwrap();
    assert_eq!(r.body, r2.body);
    let bob = directory["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == "bob@lab.com")
        .unwrap()
        .clone();
    assert_eq!(bob["database"], "DB02");
    assert_eq!(bob["display_name"], "Bob Brown");
    let guid = bob["guid"].as_str().unwrap().to_string();
    assert_eq!(guid.len(), 36);

    // The status: DB01 mounted on EX1, DB02 on EX2, quorum, a version.
    let view = status(ex1).await;
    assert_eq!(view["server"], "EX1");
    assert_eq!(db(&view, "DB01")["mounted"], "EX1");
    assert_eq!(db(&view, "DB02")["mounted"], "EX2");
    assert_eq!(copy(&view, "DB01", "EX2")["activation_preference"], 2);
    assert_eq!(view["quorum"]["has"], true);
    assert_eq!(view["quorum"]["total"], 3, "two members and the witness");
    let version = view["version"].as_u64().unwrap();
    let etag = format!("\"{version}\"");
    let r = http_call(
        ex1,
        "GET",
        "/mock/dag/status",
        &[("if-none-match", &etag)],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert!(r.status == 304 || r.status == 200, "{}", r.status);

    // Bob (DB02 on EX2) sends to Alice (DB01 on EX1) through EX1: proxied.
    let subject = "Shipped to the passive copy";
    let r = send_acked(ex1, BOB, ALICE.0, subject).await;
    let acked = Instant::now();
    assert_eq!(r.header("x-feserver"), "EX1");
    assert_eq!(r.header("x-beserver"), "EX2");
    // A change of Bob's own database names its log generation.
    let r = send_acked(ex1, BOB, BOB.0, "a note to myself").await;
    assert!(
        r.header("x-mock-log-generation").starts_with("DB02:"),
        "{:?}",
        r.headers
    );
    // Alice reads it through EX2 (proxied to EX1, DB01's active server).
    let r = ews(ex2, ALICE, &find(subject), CALL).await.unwrap();
    assert_eq!(r.header("x-feserver"), "EX2");
    assert_eq!(r.header("x-beserver"), "EX1");
    assert!(r.body.contains("TotalItemsInView=\"1\""), "{}", r.body);

    // The message is in EX2's passive copy of DB01, within a bound.
    let file = dag.copy_file("EX2", "DB01");
    wait_until("the message in EX2's copy of DB01", SETTLE, || {
        let file = file.clone();
        async move {
            subjects_in_copy(&file, ALICE.0)
                .iter()
                .any(|s| s == subject)
        }
    })
    .await;
    println!(
        "log shipping: the message was in EX2's passive copy at most {} ms after it was acknowledged",
        acked.elapsed().as_millis()
    );
    wait_until("EX2's view: its copy of DB01 caught up", SETTLE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                let c = copy(&v, "DB01", "EX2");
                c["status"] == "Healthy"
                    && c["copy_queue"] == 0
                    && c["copied_generation"] == copy(&v, "DB01", "EX1")["copied_generation"]
            })
    })
    .await;

    // MAPI/HTTP names the mailbox by GUID: EX1 proxies Bob's to EX2.
    let auth = basic(BOB);
    let r = http_call(
        ex1,
        "POST",
        &format!("/mapi/emsmdb/?MailboxId={guid}@lab.com"),
        &[("authorization", &auth), ("x-requesttype", "Connect")],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-beserver"), "EX2");
    assert_eq!(r.header("x-feserver"), "EX1");
    // Outlook Anywhere names the mailbox `<guid>@<domain>:6001`: the
    // RPC_OUT_DATA channel streams through EX1 from EX2.
    let r = http_call(
        ex1,
        "RPC_OUT_DATA",
        &format!("/rpc/rpcproxy.dll?{guid}@lab.com:6001&bytes=100000"),
        &[
            ("authorization", &auth),
            ("content-type", "application/rpc"),
        ],
        &"\0".repeat(76),
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-beserver"), "EX2");
    assert_eq!(r.header("content-length"), "100000");
    // (The body is binary; the helper reads it as text, lossily.)
    assert!(r.body.len() >= 100_000, "the whole stream came through");
    // A health page is this server's own.
    let r = http_call(ex1, "GET", "/owa/healthcheck.htm", &[], "", CALL)
        .await
        .unwrap();
    assert_eq!(r.header("x-beserver"), "EX1");
}

/// kill -9 of EX2 (DB02's active copy) while Bob sends and reads in a loop
/// against EX1: DB02 mounts on EX1 within a bound, every acknowledged
/// message whose generation EX1 had is there; EX2 comes back as a passive
/// copy and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_active_server_fails_db02_over() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let ex1 = dag.addr("EX1");

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, u64, u64)>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, acked, refused) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&refused));
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let subject = format!("bob-loop-{i:05}");
                match ews(ex1, BOB, &send_to(BOB.0, &subject), Duration::from_secs(10)).await {
                    Ok(r) if r.status == 200 && r.body.contains("ResponseClass=\"Success\"") => {
                        let g = generation(&r).unwrap_or(0);
                        acked.lock().unwrap().push((subject, g, now_ms()));
                    }
                    Ok(r) => {
                        assert!(
                            r.status == 503 && !r.header("retry-after").is_empty(),
                            "unexpected answer {}: {}",
                            r.status,
                            r.body
                        );
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = count(ex1, BOB, "bob-loop-").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_until("Bob's loop under way", SETTLE, || async {
        acked.lock().unwrap().len() >= 20
    })
    .await;

    let killed_at = now_ms();
    dag.kill9("EX2");
    wait_until("DB02 mounted on EX1", MOVE, || async {
        status_within(ex1, Duration::from_secs(5))
            .await
            .is_some_and(|v| db(&v, "DB02")["mounted"] == "EX1")
    })
    .await;
    let after = acked.lock().unwrap().len();
    wait_until("Bob's sends acknowledged again", MOVE, || async {
        acked.lock().unwrap().len() >= after + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    worker.await.unwrap();

    let view = status(ex1).await;
    let d = db(&view, "DB02");
    let activation = &d["last_activation"];
    assert_eq!(activation["kind"], "failover", "{d}");
    assert_eq!(activation["from"], "EX2");
    assert_eq!(activation["to"], "EX1");
    assert_eq!(activation["decided_by"], "EX1");
    let kept = activation["generation"].as_u64().unwrap();
    let lost_logs = activation["lost_logs"].as_u64().unwrap();
    assert!(lost_logs <= 6, "GoodAvailability loses at most 6 logs: {d}");
    let decided = activation["at_unix_ms"].as_u64().unwrap();
    let mounted = d["mounted_since_unix_ms"].as_u64().unwrap();
    let acked = acked.lock().unwrap().clone();
    let first_ok = acked
        .iter()
        .find(|(_, _, at)| *at > killed_at)
        .map(|(_, _, at)| *at)
        .unwrap();

    // Every message acknowledged before the kill whose generation EX1 had
    // (<= kept), and every one acknowledged after, is there; the others
    // were lost with EX2 (at most the mount dial).
    let mut lost = Vec::new();
    for (subject, g, at) in &acked {
        let n = count(ex1, BOB, subject).await.expect("FindItem on EX1");
        if *at > killed_at || *g <= kept {
            assert_eq!(
                n, 1,
                "{subject} (generation {g}, EX1 kept up to {kept}) is missing"
            );
        } else if n == 0 {
            lost.push(subject.clone());
        }
    }
    // A lost message is one generation EX2 wrote beyond what EX1 kept.
    // EX1 counts the lost logs from what it last heard of EX2's head (as
    // Active Manager does), so a burst acknowledged after that goes
    // uncounted: the bound is the generations acknowledged before the kill.
    let last_acked = acked
        .iter()
        .filter(|(_, _, at)| *at <= killed_at)
        .map(|(_, g, _)| *g)
        .max()
        .unwrap_or(0);
    assert!(
        lost.len() as u64 <= last_acked.saturating_sub(kept),
        "lost {lost:?}: more than the {} generations acknowledged beyond the {kept} EX1 kept \
         ({lost_logs} logs counted lost)",
        last_acked.saturating_sub(kept)
    );
    assert!(
        dag.log("EX1").contains("log(s) lost"),
        "the decision is logged"
    );
    println!(
        "kill -9 of EX2: failover decided {} ms after the kill (detection), DB02 mounted on EX1 \
         after {} ms, first acknowledged send after {} ms; {} sends acknowledged, {} refused with 503; \
         lost logs {lost_logs} counted, {} acknowledged beyond the kept generation, acknowledged \
         messages lost {}",
        decided - killed_at,
        mounted - killed_at,
        first_ok - killed_at,
        acked.len(),
        refused.load(Ordering::Relaxed),
        last_acked.saturating_sub(kept),
        lost.len()
    );

    // EX2 comes back: a passive copy of DB02 that catches up.
    dag.start("EX2");
    let ex2 = dag.addr("EX2");
    wait_until("EX2's copy of DB02 caught up", MOVE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                let c = copy(&v, "DB02", "EX2");
                c["status"] == "Healthy" && c["copy_queue"] == 0 && c["replay_queue"] == 0
            })
    })
    .await;
    let view = status(ex2).await;
    assert_eq!(db(&view, "DB02")["mounted"], "EX1", "EX2 came back passive");
}

/// A lossy failover: EX2 writes three generations while EX1 is stopped,
/// then EX2 is stopped and EX1 woken: EX1 takes the witness and mounts
/// DB02 without the generations it never copied (two or three: it may
/// still read one from the answer EX2 sent as EX1 was stopped; within
/// GoodAvailability's 6); EX2, woken, never shows DB02 mounted again,
/// discards its unshipped generations (logged) and resynchronises as a
/// passive copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_failover_and_the_returning_server_discards_its_unshipped_logs() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let (ex1, ex2) = (dag.addr("EX1"), dag.addr("EX2"));
    let stop = Arc::new(AtomicBool::new(false));
    let (claims, watcher) = watch_mounts(
        vec![("EX1".into(), ex1), ("EX2".into(), ex2)],
        "DB02",
        Arc::clone(&stop),
    );

    let mut kept = 0;
    for i in 0..2 {
        kept = generation(&send_acked(ex2, BOB, BOB.0, &format!("kept-{i}")).await).unwrap();
    }
    wait_until("EX1's copy of DB02 has the kept messages", MOVE, || async {
        status_within(ex1, Duration::from_secs(5))
            .await
            .is_some_and(|v| copy(&v, "DB02", "EX1")["copied_generation"] == kept)
    })
    .await;
    dag.signal("EX1", libc::SIGSTOP);
    let mut unshipped = Vec::new();
    for i in 0..3 {
        let r = send_acked(ex2, BOB, BOB.0, &format!("unshipped-{i}")).await;
        unshipped.push(generation(&r).expect("a generation"));
    }
    let last = *unshipped.last().unwrap();
    // EX2 publishes its last generation in the cluster state (Exchange's
    // LastLogInfo): what EX1 will compare its copy with.
    wait_until("EX2's last generation published", MOVE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| db(&v, "DB02")["last_log"]["generation"] == last)
    })
    .await;
    let stopped_at = now_ms();
    dag.signal("EX2", libc::SIGSTOP);
    dag.signal("EX1", libc::SIGCONT);
    wait_until("DB02 mounted on EX1", MOVE, || async {
        status_within(ex1, Duration::from_secs(5))
            .await
            .is_some_and(|v| db(&v, "DB02")["mounted"] == "EX1")
    })
    .await;
    let view = status(ex1).await;
    let activation = db(&view, "DB02")["last_activation"].clone();
    assert_eq!(activation["kind"], "failover");
    // EX1 may still read one generation from the long poll EX2 answered
    // as it was being stopped; the others are lost.
    let from = activation["generation"].as_u64().unwrap();
    let lost = activation["lost_logs"].as_u64().unwrap();
    assert_eq!(from + lost, last, "{activation}");
    assert!((2..=3).contains(&lost), "{activation}");
    assert_eq!(
        view["witness"]["holder"], "EX1",
        "EX1 mounted with the witness's vote"
    );
    println!(
        "lossy failover: DB02 mounted on EX1 {} ms after EX2 was stopped, {} logs lost",
        db(&view, "DB02")["mounted_since_unix_ms"].as_u64().unwrap() - stopped_at,
        activation["lost_logs"]
    );

    dag.signal("EX2", libc::SIGCONT);
    wait_until("EX2 resynchronised as a passive copy", MOVE, || async {
        if !dag.log("EX2").contains("discarding") {
            return false;
        }
        let (Some(a), Some(b)) = (
            status_within(ex1, Duration::from_secs(5)).await,
            status_within(ex2, Duration::from_secs(5)).await,
        ) else {
            return false;
        };
        let c = copy(&b, "DB02", "EX2");
        c["status"] == "Healthy"
            && c["copy_queue"] == 0
            && c["replay_queue"] == 0
            && c["copied_generation"] == copy(&a, "DB02", "EX1")["copied_generation"]
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let log = dag.log("EX2");
    assert!(
        log.contains(&format!("discarding {lost} generation(s)")),
        "EX2 should log the discarded generations: {log}"
    );
    for i in 0..2 {
        assert_eq!(count(ex1, BOB, &format!("kept-{i}")).await, Some(1));
    }
    for (i, g) in unshipped.iter().enumerate() {
        let want = usize::from(*g <= from);
        assert_eq!(
            count(ex1, BOB, &format!("unshipped-{i}")).await,
            Some(want),
            "unshipped-{i}, generation {g}, EX1 started from {from}"
        );
    }
    let overlaps = claims.overlaps();
    assert!(
        overlaps.is_empty(),
        "two mounted copies of DB02: {overlaps:?}"
    );
    assert_eq!(claims.both_in_one_poll.load(Ordering::Relaxed), 0);
}

/// SIGSTOP of the server with DB02's active copy: the other takes the
/// witness and mounts DB02; after SIGCONT the stopped one dismounts and
/// becomes passive. Both statuses, polled every 50 ms throughout, never
/// show two mounted copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_active_server_never_leaves_two_mounted_copies() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let (ex1, ex2) = (dag.addr("EX1"), dag.addr("EX2"));
    let stop = Arc::new(AtomicBool::new(false));
    let (claims, watcher) = watch_mounts(
        vec![("EX1".into(), ex1), ("EX2".into(), ex2)],
        "DB02",
        Arc::clone(&stop),
    );
    send_acked(ex1, BOB, BOB.0, "before the stop").await;

    let stopped_at = now_ms();
    dag.signal("EX2", libc::SIGSTOP);
    let witness_seen = Arc::new(AtomicBool::new(false));
    wait_until("DB02 mounted on EX1", MOVE, || {
        let seen = Arc::clone(&witness_seen);
        async move {
            let Some(v) = status_within(ex1, Duration::from_secs(5)).await else {
                return false;
            };
            if v["witness"]["holder"] == "EX1" && v["quorum"]["has"] == true {
                seen.store(true, Ordering::Relaxed);
            }
            db(&v, "DB02")["mounted"] == "EX1"
        }
    })
    .await;
    assert!(
        witness_seen.load(Ordering::Relaxed),
        "EX1 should hold the witness while EX2 is stopped"
    );
    let view = status(ex1).await;
    assert_eq!(copy(&view, "DB02", "EX2")["status"], "ServiceDown");
    let mounted = db(&view, "DB02")["mounted_since_unix_ms"].as_u64().unwrap();
    send_acked(ex1, BOB, BOB.0, "while EX2 is stopped").await;
    // Keep EX2 stopped a little longer than its witness lease could last.
    tokio::time::sleep(Duration::from_secs(1)).await;

    dag.signal("EX2", libc::SIGCONT);
    wait_until("EX2 passive again", MOVE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                let c = copy(&v, "DB02", "EX2");
                c["status"] == "Healthy" && c["copy_queue"] == 0
            })
    })
    .await;
    // A little more watching once both run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    assert_eq!(count(ex2, BOB, "while EX2 is stopped").await, Some(1));
    let overlaps = claims.overlaps();
    println!(
        "SIGSTOP of EX2: DB02 mounted on EX1 {} ms after the stop; {} status polls, {} mount claims, overlaps {:?}",
        mounted - stopped_at,
        claims.polls.load(Ordering::Relaxed),
        claims.seen.lock().unwrap().len(),
        overlaps
    );
    assert!(
        overlaps.is_empty(),
        "two mounted copies of DB02: {overlaps:?}"
    );
    assert_eq!(claims.both_in_one_poll.load(Ordering::Relaxed), 0);
    // EX2 woke either without quorum (and dismounted) or, its heartbeat
    // first, with the newer state (and dismounted): either way, logged.
    assert!(
        dag.log("EX2").contains("dismounted"),
        "EX2 dismounted DB02 when it woke"
    );
}

/// A suspended copy that fell behind more than the mount dial is not
/// mounted when its active server dies (logged); once that server is back,
/// move-active resumes it, lets it catch up and mounts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_copy_behind_the_dial_is_not_mounted_then_move_active_mounts_it() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let (ex1, ex2) = (dag.addr("EX1"), dag.addr("EX2"));

    let r = http_call(
        ex2,
        "POST",
        "/mock/dag/databases/db01/copies/ex2/suspend",
        &[],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http_call(
        ex1,
        "POST",
        "/mock/dag/databases/DB01/copies/EX1/suspend",
        &[],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(
        r.status, 409,
        "the active copy cannot be suspended: {}",
        r.body
    );
    // Ten generations; a poll under way when the copy was suspended may
    // still bring one: more than the dial's 6 behind either way.
    for i in 0..10 {
        send_acked(ex1, ALICE, ALICE.0, &format!("behind-{i}")).await;
    }
    wait_until("EX2's suspended copy more than 6 behind", MOVE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                let c = copy(&v, "DB01", "EX2");
                c["status"] == "Suspended" && c["copy_queue"].as_u64().unwrap_or(0) >= 9
            })
    })
    .await;

    dag.kill9("EX1");
    wait_until("EX2 logs why DB01 is not mounted", MOVE, || async {
        dag.log("EX2").contains("DB01 not mounted")
    })
    .await;
    let view = status(ex2).await;
    assert!(db(&view, "DB01")["mounted"].is_null(), "{view}");
    assert!(
        db(&view, "DB01")["note"]
            .as_str()
            .unwrap_or("")
            .contains("Suspended"),
        "{view}"
    );
    // Alice's requests meanwhile: 503 with Retry-After.
    let r = ews(ex2, ALICE, &find("behind-"), CALL).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.header("retry-after").is_empty());

    // EX1 comes back and mounts DB01 again (nobody took it over).
    dag.start("EX1");
    let ex1 = dag.addr("EX1");
    wait_until("DB01 mounted on EX1 again", MOVE, || async {
        status_within(ex2, Duration::from_secs(5))
            .await
            .is_some_and(|v| db(&v, "DB01")["mounted"] == "EX1")
    })
    .await;
    let started = Instant::now();
    let r = http_call(
        ex1,
        "POST",
        "/mock/dag/databases/DB01/move-active",
        &[("content-type", "application/json")],
        r#"{"server": "EX2"}"#,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let moved: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(moved["active"], "EX2");
    assert_eq!(moved["lost_logs"], 0);
    println!(
        "move-active DB01 to EX2 (the suspended copy resumed, caught up, mounted at generation {}): {} ms",
        moved["generation"],
        started.elapsed().as_millis()
    );
    let view = status(ex2).await;
    assert_eq!(db(&view, "DB01")["mounted"], "EX2");
    assert_eq!(db(&view, "DB01")["last_activation"]["kind"], "switchover");
    assert_eq!(count(ex2, ALICE, "behind-").await, Some(10));
    // A move to a server without a copy is refused with the reason.
    let r = http_call(
        ex2,
        "POST",
        "/mock/dag/databases/DB01/move-active",
        &[],
        r#"{"server":"EX9"}"#,
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("no copy on EX9"), "{}", r.body);
}

/// A copy of DB01 added on a third server is seeded from the active copy
/// and its queues reach 0; then it is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_add_seeds_a_copy_on_a_third_server() {
    let _serial = SERIAL.lock().await;
    let mut dag = TestDag::new(
        &["EX1", "EX2", "EX3"],
        &[("DB01", &["EX1", "EX2"]), ("DB02", &["EX2", "EX1"])],
    );
    for name in ["EX1", "EX2", "EX3"] {
        dag.start(name);
    }
    wait_settled(&dag).await;
    let (ex1, ex3) = (dag.addr("EX1"), dag.addr("EX3"));
    let view = status(ex3).await;
    assert_eq!(view["quorum"]["total"], 3, "three members, no witness vote");
    assert_eq!(view["quorum"]["witness_counts"], false);
    for i in 0..3 {
        send_acked(ex3, ALICE, ALICE.0, &format!("before the copy {i}")).await;
    }
    let started = Instant::now();
    let r = http_call(
        ex1,
        "POST",
        "/mock/dag/databases/DB01/copies",
        &[("content-type", "application/json")],
        r#"{"server": "EX3", "activation_preference": 3}"#,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let added: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(added["activation_preference"], 3);
    assert_eq!(added["status"], "Healthy");
    println!(
        "copy add DB01 on EX3: seeded and healthy in {} ms",
        started.elapsed().as_millis()
    );
    wait_until("EX3's copy of DB01 caught up", MOVE, || async {
        status_within(ex3, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                let c = copy(&v, "DB01", "EX3");
                c["status"] == "Healthy" && c["copy_queue"] == 0 && c["replay_queue"] == 0
            })
    })
    .await;
    let file = dag.copy_file("EX3", "DB01");
    let subjects = subjects_in_copy(&file, ALICE.0);
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.starts_with("before the copy"))
            .count(),
        3,
        "{subjects:?}"
    );
    // New mail reaches the new copy too.
    send_acked(ex1, ALICE, ALICE.0, "after the copy").await;
    wait_until("new mail in EX3's copy", MOVE, || {
        let file = file.clone();
        async move {
            subjects_in_copy(&file, ALICE.0)
                .iter()
                .any(|s| s == "after the copy")
        }
    })
    .await;
    let definition = std::fs::read_to_string(dag.dir().join("dag.toml")).unwrap();
    assert_eq!(
        definition.matches("server = \"EX3\"").count(),
        1,
        "{definition}"
    );

    let r = http_call(
        ex1,
        "DELETE",
        "/mock/dag/databases/DB01/copies/EX1",
        &[],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 409, "the active copy stays: {}", r.body);
    let r = http_call(
        ex1,
        "DELETE",
        "/mock/dag/databases/DB01/copies/EX3",
        &[],
        "",
        CALL,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("EX3's copy gone from the views", MOVE, || async {
        status_within(ex1, Duration::from_secs(5))
            .await
            .is_some_and(|v| {
                db(&v, "DB01")["copies"]
                    .as_array()
                    .is_some_and(|cs| cs.len() == 2)
            })
    })
    .await;
}

//! The access log: one JSON line per request with the contract's fields,
//! and never a secret.

mod support;

use std::time::Duration;

use support::backend::EchoBackend;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_without_secrets() {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let ex1 = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", ex1.addr)], "")).unwrap();
    let log = dir.path().join("array.log");
    let (_array, addrs) = spawn_array_with(&config, &["--log-format", "json"], Some(&log));
    let client = Client::h1(addrs.https, &certs.ca_pem);

    let req = http::Request::builder()
        .method("POST")
        .uri("/EWS/Exchange.asmx?password=hunter2")
        .header("host", FQDN)
        .header("authorization", "Basic YWxpY2U6c2VjcmV0LXBhc3N3b3Jk")
        .header("cookie", "cadata=secret-session-cookie")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"<soap>twelve</soap>",
        )))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let sent = resp.body().len() as u64;
    assert_eq!(client.get("/nowhere").await.unwrap().status(), 404);

    let read_lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    };
    wait_until("two access lines", Duration::from_secs(20), || {
        let n = read_lines().len();
        async move { n >= 2 }
    })
    .await;
    let lines = read_lines();
    let ews = &lines[0]["fields"];
    assert_eq!(ews["method"], "POST");
    assert_eq!(ews["path"], "/EWS/Exchange.asmx");
    assert_eq!(ews["service"], "ews");
    assert_eq!(ews["member"], "EX1");
    assert_eq!(ews["status"], 200);
    assert_eq!(ews["bytes_in"], 19);
    assert_eq!(ews["bytes_out"], sent);
    assert_eq!(ews["retries"], 0);
    assert!(ews["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ews["duration_ms"].as_f64().unwrap() >= 0.0);
    let miss = &lines[1]["fields"];
    assert_eq!(miss["status"], 404);
    assert_eq!(miss["member"], "none");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        "hunter2",
        "YWxpY2U6",
        "secret-session-cookie",
        "secret-password",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the log");
    }
}

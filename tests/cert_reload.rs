//! Live certificate rotation: new handshakes get the new certificate,
//! nobody fails while it changes, and a broken file leaves the old one
//! serving; also when the files are links swapped as Kubernetes does.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::backend::EchoBackend;
use support::*;

/// A CA that can issue more leaves for the array.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn new_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "rotation test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// A leaf for mail.lab.com; returns (chain PEM, key PEM).
fn leaf(ca: &Ca, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["mail.lab.com".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "mail.lab.com");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (format!("{}{}", cert.pem(), ca.pem), key.serialize_pem())
}

/// Replaces a file atomically, as config management does.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The serial of the certificate the array serves on a new connection
/// (a full handshake: a resumed session would show the old certificate).
/// Waits (20 s at most) until the array serves a certificate whose serial
/// is not `old`.
async fn wait_serial_other_than(client: &Client, old: &[u8], what: &str) {
    wait_until(what, Duration::from_secs(20), || async {
        served_serial(client)
            .await
            .map(|s| s != old)
            .unwrap_or(false)
    })
    .await;
}

async fn served_serial(client: &Client) -> anyhow::Result<Vec<u8>> {
    let tls = client.clone().without_resumption().tls().await?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow::anyhow!("no certificate"))?
        .clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    Ok(cert.raw_serial().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_nobody_and_bad_files_are_refused() {
    let dir = tempdir();
    let ca = new_ca();
    let (chain1, key1) = leaf(&ca, false);
    let cert_path = dir.path().join("mail.lab.com.crt");
    let key_path = dir.path().join("mail.lab.com.key");
    std::fs::write(&cert_path, &chain1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let certs = TestCerts {
        ca_pem: ca.pem.clone(),
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let ex1 = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", ex1.addr)], "")).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &ca.pem);
    let first = served_serial(&client).await.unwrap();
    assert!(
        metric(
            addrs.admin,
            "casarray_certificate_expiry_timestamp_seconds",
            &[("name", "mail.lab.com")]
        )
        .await
            > 0.0
    );

    // Clients loop over new connections (a full handshake each) while the
    // certificate changes under them.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut loops = Vec::new();
    for _ in 0..3 {
        let (client, stop, ok, failures) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failures),
        );
        loops.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) || std::time::Instant::now() > deadline {
                    break;
                }
                match client.get("/owa/").await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    wait_until("traffic", Duration::from_secs(20), || {
        let n = ok.load(Ordering::Relaxed);
        async move { n >= 20 }
    })
    .await;

    // Rotate: key first, then certificate, each by atomic rename. In between
    // the pair does not match: that reload is refused and the old pair
    // keeps serving; the second completes the rotation.
    let (chain2, key2) = leaf(&ca, false);
    replace(&key_path, &key2);
    replace(&cert_path, &chain2);
    wait_serial_other_than(&client, &first, "new certificate served").await;
    let second = served_serial(&client).await.unwrap();
    let after_rotation = ok.load(Ordering::Relaxed);
    wait_until("more traffic", Duration::from_secs(20), || {
        let n = ok.load(Ordering::Relaxed);
        async move { n >= after_rotation + 20 }
    })
    .await;

    // A broken file is refused; the rotated certificate keeps serving.
    let refused_before = metric(
        addrs.admin,
        "casarray_config_reloads_total",
        &[("result", "failure")],
    )
    .await;
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    wait_until("broken file refused", Duration::from_secs(20), || async {
        metric(
            addrs.admin,
            "casarray_config_reloads_total",
            &[("result", "failure")],
        )
        .await
            > refused_before
    })
    .await;
    assert_eq!(served_serial(&client).await.unwrap(), second);

    // An expired certificate (with its own key, in one bundle-free pair) too.
    let (expired_chain, expired_key) = leaf(&ca, true);
    let refused_before = metric(
        addrs.admin,
        "casarray_config_reloads_total",
        &[("result", "failure")],
    )
    .await;
    replace(&key_path, &expired_key);
    replace(&cert_path, &expired_chain);
    wait_until(
        "expired certificate refused",
        Duration::from_secs(20),
        || async {
            metric(
                addrs.admin,
                "casarray_config_reloads_total",
                &[("result", "failure")],
            )
            .await
                > refused_before
        },
    )
    .await;
    assert_eq!(served_serial(&client).await.unwrap(), second);

    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    println!(
        "rotation: {} requests on new connections, {} failures",
        ok.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(array.child.id() > 0);
    assert_eq!(
        client.get("/owa/").await.unwrap().status(),
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let dir = tempdir();
    let ca = new_ca();
    let (chain1, key1) = leaf(&ca, false);
    let cert_path = dir.path().join("a.crt");
    let key_path = dir.path().join("a.key");
    std::fs::write(&cert_path, &chain1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let certs = TestCerts {
        ca_pem: ca.pem.clone(),
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let ex1 = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    let extra = "";
    let text = config_toml(&certs, &[("EX1", ex1.addr)], extra)
        .replace("[tls]\n", "[tls]\nwatch = false\n");
    std::fs::write(&config, text).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &ca.pem);
    let first = served_serial(&client).await.unwrap();
    let (chain2, key2) = leaf(&ca, false);
    // Written in place (not watched): only SIGHUP makes it live.
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &chain2).unwrap();
    array.signal(libc::SIGHUP);
    wait_serial_other_than(&client, &first, "new certificate after SIGHUP").await;
    // The new certificate serves as soon as the store swaps; the reload
    // is counted once all of it is done.
    wait_until("the reload counted", Duration::from_secs(20), || async {
        metric(
            addrs.admin,
            "casarray_config_reloads_total",
            &[("result", "success")],
        )
        .await
            >= 1.0
    })
    .await;
}

/// A volume laid out as Kubernetes mounts a Secret or ConfigMap: the files
/// in a timestamped directory, `..data` pointing at it, and each file a link
/// through `..data`.
struct KubeVolume {
    root: std::path::PathBuf,
    current: String,
}

impl KubeVolume {
    fn new(root: &Path, stamp: &str, files: &[(&str, &str)]) -> Self {
        let volume = KubeVolume {
            root: root.to_path_buf(),
            current: stamp.to_string(),
        };
        volume.write_dir(stamp, files);
        std::os::unix::fs::symlink(stamp, root.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name)).unwrap();
        }
        volume
    }

    fn write_dir(&self, stamp: &str, files: &[(&str, &str)]) {
        let dir = self.root.join(stamp);
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// An update as the kubelet makes it: a new timestamped directory, a
    /// new `..data` link renamed over the old one, the old directory removed.
    fn update(&mut self, stamp: &str, files: &[(&str, &str)]) {
        self.write_dir(stamp, files);
        let staged = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(stamp, &staged).unwrap();
        std::fs::rename(&staged, self.root.join("..data")).unwrap();
        std::fs::remove_dir_all(self.root.join(&self.current)).unwrap();
        self.current = stamp.to_string();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_data_swap_reloads_and_a_broken_one_is_refused() {
    let dir = tempdir();
    let root = dir.path();
    let ca = new_ca();
    let (chain1, key1) = leaf(&ca, false);
    let certs = TestCerts {
        ca_pem: ca.pem.clone(),
        cert: root.join("mail.crt"),
        key: root.join("mail.key"),
    };
    let ex1 = EchoBackend::start("EX1").await;
    let toml = config_toml(&certs, &[("EX1", ex1.addr)], "");
    let mut volume = KubeVolume::new(
        root,
        "..2026_11_24_10_00_00.1",
        &[
            ("casarray.toml", &toml),
            ("mail.crt", &chain1),
            ("mail.key", &key1),
        ],
    );
    let (_array, addrs) = spawn_array(&root.join("casarray.toml"));
    let client = Client::h1(addrs.https, &ca.pem);
    let first = served_serial(&client).await.unwrap();
    let failures = || {
        metric(
            addrs.admin,
            "casarray_config_reloads_total",
            &[("result", "failure")],
        )
    };

    let (chain2, key2) = leaf(&ca, false);
    volume.update(
        "..2026_11_24_10_05_00.2",
        &[
            ("casarray.toml", &toml),
            ("mail.crt", &chain2),
            ("mail.key", &key2),
        ],
    );
    wait_serial_other_than(&client, &first, "new certificate after the ..data swap").await;
    let second = served_serial(&client).await.unwrap();

    // A broken certificate is refused and the swapped-in one keeps serving.
    let refused_before = failures().await;
    volume.update(
        "..2026_11_24_10_10_00.3",
        &[
            ("casarray.toml", &toml),
            (
                "mail.crt",
                "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
            ),
            ("mail.key", &key2),
        ],
    );
    wait_until("broken swap refused", Duration::from_secs(20), || async {
        failures().await > refused_before
    })
    .await;
    assert_eq!(served_serial(&client).await.unwrap(), second);

    // The watch still follows the links after the refused reload.
    let (chain3, key3) = leaf(&ca, false);
    volume.update(
        "..2026_11_24_10_15_00.4",
        &[
            ("casarray.toml", &toml),
            ("mail.crt", &chain3),
            ("mail.key", &key3),
        ],
    );
    wait_serial_other_than(&client, &second, "certificate after the fixed swap").await;
    assert_eq!(client.get("/owa/").await.unwrap().status(), 200);
}

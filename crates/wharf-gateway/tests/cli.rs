//! The `wharf` command as an operator runs it: `wharf config` layering and
//! redaction, `wharf serve` with the embedded PostgreSQL and graceful shutdown,
//! and HTTPS with a self-signed certificate.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WHARF: &str = env!("CARGO_BIN_EXE_wharf");

/// A `wharf` command with a clean environment: no inherited `WHARF_*` or
/// `DATABASE_URL` can change what the test sees.
fn wharf(args: &[&str]) -> Command {
    let mut cmd = Command::new(WHARF);
    cmd.args(args).env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(value) = std::env::var_os(keep) {
            cmd.env(keep, value);
        }
    }
    cmd
}

/// A temporary directory PostgreSQL can use when tests run as root (it then runs
/// as the `postgres` user, who must be able to enter the directory).
fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn config_layers_file_then_environment_then_flags() {
    let dir = temp_dir();
    let file = dir.path().join("wharf.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:1000\"\ndata_dir = \"/srv/file\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
    )
    .unwrap();
    let out = wharf(&["config", "--listen", "0.0.0.0:3000"])
        .env("WHARF_CONFIG", &file)
        .env("WHARF_DATA_DIR", "/srv/env")
        .env("WHARF_LOG_LEVEL", "warn")
        .env("WHARF_LISTEN", "0.0.0.0:2000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    assert_eq!(
        shown["listen"].as_str(),
        Some("0.0.0.0:3000"),
        "flag beats env and file"
    );
    assert_eq!(
        shown["data_dir"].as_str(),
        Some("/srv/env"),
        "env beats file"
    );
    assert_eq!(shown["log"]["level"].as_str(), Some("warn"));
    assert_eq!(
        shown["log"]["format"].as_str(),
        Some("json"),
        "file beats default"
    );
    assert_eq!(shown["storage"]["type"].as_str(), Some("filesystem"));
    assert_eq!(shown["storage"]["root"].as_str(), Some("/srv/env/storage"));
}

#[test]
fn config_output_never_contains_secrets() {
    let out = wharf(&["config"])
        .env(
            "DATABASE_URL",
            "postgres://wharf:db-pass-123@db.internal:5432/wharf",
        )
        .env("WHARF_STORAGE_TYPE", "s3")
        .env("WHARF_STORAGE_S3_BUCKET", "blobs")
        .env("WHARF_STORAGE_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("WHARF_STORAGE_S3_SECRET_ACCESS_KEY", "s3-secret-456")
        .env("WHARF_STORAGE_S3_SESSION_TOKEN", "session-789")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["db-pass-123", "s3-secret-456", "session-789"] {
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
    assert!(
        all.contains("postgres://wharf:REDACTED@db.internal:5432/wharf"),
        "{all}"
    );
    assert!(
        all.contains("AKIAEXAMPLE"),
        "access key ids are not secret: {all}"
    );
}

#[test]
fn bad_configuration_fails_with_one_clear_line() {
    let out = wharf(&["config"])
        .env("WHARF_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("wharf: ") && err.contains("xml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn every_subcommand_explains_itself() {
    for sub in ["serve", "migrate", "config"] {
        let out = wharf(&[sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(&format!("Usage: wharf {sub}")), "{help}");
        assert!(
            help.lines().count() > 5,
            "{sub} --help is too terse: {help}"
        );
    }
}

/// A running `wharf serve`. Dropping it sends SIGTERM and waits, so an embedded
/// PostgreSQL is never left behind by a failing test.
struct Server {
    child: Option<Child>,
    url: String,
    logs: mpsc::Receiver<String>,
}

impl Server {
    /// Start `wharf serve` on a free port and wait until it says it is ready.
    fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
        cmd.arg("--data-dir").arg(data_dir);
        cmd.envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("wharf> {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            logs,
        };
        let line = server
            .wait_for_log("wharf is ready", Duration::from_secs(60))
            .expect("wharf serve did not become ready");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        server.url = json["url"].as_str().unwrap().to_owned();
        server
    }

    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait for exit; returns whether it exited successfully.
    fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[tokio::test]
async fn serve_without_a_database_url_runs_and_stops_its_own_postgres() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let client = reqwest::Client::new();

    let ping = client
        .get(format!("{}/api/v2.0/ping", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert!(ping.headers().contains_key("x-request-id"));
    assert_eq!(ping.text().await.unwrap(), "Pong");

    let health = client
        .get(format!("{}/api/v2.0/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy", "{body}");

    let pgdata = data.join("postgres/data");
    assert!(
        pgdata.join("postmaster.pid").exists(),
        "the embedded cluster runs"
    );
    assert!(
        data.join("storage").is_dir(),
        "filesystem storage defaults to <data_dir>/storage"
    );

    assert!(server.terminate(), "wharf exits 0 on SIGTERM");
    assert!(
        !pgdata.join("postmaster.pid").exists(),
        "the embedded cluster was stopped"
    );

    // A second start reuses the initialised cluster.
    let mut again = Server::start(&data, &[]);
    let ping = client
        .get(format!("{}/api/v2.0/ping", again.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert!(again.terminate());
    assert!(!pgdata.join("postmaster.pid").exists());
}

#[tokio::test]
async fn in_flight_requests_finish_after_sigterm() {
    let dir = temp_dir();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    // A health check is a request that touches the database; fire a few, signal
    // while they are under way, and every one must still get its answer.
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let request = client.get(format!("{}/api/v2.0/health", server.url)).send();
            tokio::spawn(request)
        })
        .collect();
    let _ = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status();
    for request in requests {
        // Either answered in full, or refused before it was accepted; never cut off.
        if let Ok(response) = request.await.unwrap() {
            assert!(response.status().is_success());
            response.text().await.unwrap();
        }
    }
    assert!(
        server
            .wait_for_log("embedded PostgreSQL stopped", Duration::from_secs(60))
            .is_some()
    );
    assert!(server.terminate());
}

#[tokio::test]
async fn serves_https_with_a_configured_certificate() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = temp_dir();
    let (cert, key) = self_signed_cert(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &[
            ("WHARF_TLS_CERT", cert.to_str().unwrap()),
            ("WHARF_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let ping = client
        .get(format!("{}/api/v2.0/ping", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "Pong");

    // Plain HTTP on the TLS port does not get an answer.
    let plain = server.url.replace("https://", "http://");
    let response = reqwest::Client::new()
        .get(format!("{plain}/api/v2.0/ping"))
        .send()
        .await;
    assert!(response.map(|r| r.status() != 200).unwrap_or(true));
}

#[test]
fn a_missing_certificate_is_reported_before_anything_starts() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let out = wharf(&["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env("WHARF_TLS_CERT", "/nonexistent/cert.pem")
        .env("WHARF_TLS_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    assert!(
        !data.join("postgres").exists(),
        "no cluster was created for a server that cannot start"
    );
}

fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(status.success());
    (cert, key)
}

/// The PostgreSQL server tests may create databases on (`DATABASE_URL`, as for the
/// end-to-end tests).
fn test_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[tokio::test]
async fn replicas_migrating_at_once_all_succeed() {
    use sqlx::Connection;
    let admin_url = test_server_url();
    let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await else {
        panic!("this test needs a PostgreSQL at {admin_url} (set DATABASE_URL)");
    };
    let name = format!("wharf_gateway_migrate_{}", std::process::id());
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut admin)
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);

    // Three "replicas" start together; the advisory lock serialises them.
    let children: Vec<Child> = (0..3)
        .map(|_| {
            wharf(&["migrate"])
                .env("DATABASE_URL", url.as_str())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut db = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE NOT success")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    db.close().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[test]
fn an_unreachable_database_fails_start_up_with_one_message() {
    let dir = temp_dir();
    let out = wharf(&["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("DATABASE_URL", "postgres://wharf:hunter2@127.0.0.1:1/wharf")
        .env("WHARF_DATABASE_CONNECT_TIMEOUT_SECS", "0")
        .env("WHARF_LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

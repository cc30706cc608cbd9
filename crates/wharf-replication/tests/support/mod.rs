//! Debian's `docker-registry` (distribution 2.8) on a free loopback port,
//! optionally behind htpasswd Basic auth; killed when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use wharf_replication::client::{Manifest, sha256_digest};
use wharf_replication::{Endpoint, RegistryClient};

pub const USER: &str = "replicator";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Distribution {
    pub child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_distribution(basic_auth: bool) -> Distribution {
    start_distribution_on(free_port(), basic_auth)
}

/// A registry on `port` (to bring an endpoint back where it was).
pub fn start_distribution_on(port: u16, basic_auth: bool) -> Distribution {
    let dir = tempfile::tempdir().unwrap();
    let auth = if basic_auth {
        let path = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) must be installed");
        assert!(out.status.success());
        std::fs::write(&path, out.stdout).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
            path.display()
        )
    } else {
        String::new()
    };
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{auth}http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Distribution {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// A fresh PostgreSQL database from `DATABASE_URL` with every workspace
/// migration applied; dropped (with its sessions) when the value is dropped.
pub struct TestDb {
    pub pool: sqlx::PgPool,
    name: String,
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn new() -> TestDb {
        use sqlx::Connection;
        let admin_url = database_url();
        let name = format!("wharf_repl_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(url.as_str())
            .await
            .expect("connect test database");
        sqlx::migrate!("../../migrations")
            .run(&pool)
            .await
            .expect("migrations");
        TestDb { pool, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime: drop the database from a
        // thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&database_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

pub fn client(reg: &Distribution, auth: bool) -> Arc<RegistryClient> {
    let mut ep = Endpoint::new(&reg.base).unwrap();
    if auth {
        ep = ep.with_basic(USER, PASSWORD);
    }
    Arc::new(RegistryClient::new(ep).unwrap())
}

pub fn random(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::fill(&mut v[..]);
    Bytes::from(v)
}

pub async fn push_blob(c: &RegistryClient, repo: &str, data: &Bytes) -> serde_json::Value {
    let digest = sha256_digest(data);
    let chunk: Result<Bytes, reqwest::Error> = Ok(data.clone());
    c.push_blob(
        repo,
        &digest,
        data.len() as u64,
        futures_util::stream::iter(vec![chunk]),
        None,
    )
    .await
    .unwrap();
    json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": data.len()})
}

pub async fn put(
    c: &RegistryClient,
    repo: &str,
    reference: &str,
    value: &serde_json::Value,
) -> Manifest {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
    let m = Manifest {
        digest: sha256_digest(&bytes),
        media_type: value["mediaType"].as_str().unwrap().to_owned(),
        bytes,
    };
    c.put_manifest(repo, reference, &m).await.unwrap();
    m
}

/// An image of a config and `layers` in `repo`, tagged `tag`.
pub async fn push_image(c: &RegistryClient, repo: &str, tag: &str, layers: &[Bytes]) -> Manifest {
    let config = Bytes::from(format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"t\":\"{repo}:{tag}\"}}"
    ));
    let mut cfg = push_blob(c, repo, &config).await;
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let mut ls = Vec::new();
    for l in layers {
        ls.push(push_blob(c, repo, l).await);
    }
    put(
        c,
        repo,
        tag,
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": ls}),
    )
    .await
}

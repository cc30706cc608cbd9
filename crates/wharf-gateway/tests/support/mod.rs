//! The end-to-end harness: real `wharf serve` processes on a fresh PostgreSQL
//! database each, an OCI distribution client speaking raw HTTP, and test images
//! generated on the spot (no network, no fixtures).
//!
//! Every e2e test goes through a [`Backend`] (one data directory, one database,
//! one storage configuration) and starts one or more [`Server`]s on it. Setting
//! `WHARF_E2E_REGISTRY=reference` runs the same tests against Debian's
//! `docker-registry` (CNCF distribution 2.8) instead of Wharf: that is how the
//! tests themselves are validated against a known-good registry.
//!
//! Environment read here:
//! - `DATABASE_URL`: the PostgreSQL server to create per-test databases on
//!   (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! - `WHARF_TEST_S3_ENDPOINT`, `WHARF_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`: moto, for S3 storage tests.
//! - `WHARF_TEST_S3S_ENDPOINT`, `WHARF_TEST_S3S_BUCKET`, `WHARF_TEST_S3S_ACCESS_KEY`,
//!   `WHARF_TEST_S3S_SECRET_KEY`: s3s-fs, which checks SigV4 signatures.
//! - `WHARF_REQUIRE_S3=1` / `CI=true`: a missing S3 server or client tool fails
//!   the test instead of skipping it.

// Each e2e test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Every manifest media type a pull accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const START_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

/// True under CI, where a missing prerequisite is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| matches!(v.as_str(), "true" | "1" | "yes"))
}

fn s3_required() -> bool {
    std::env::var("WHARF_REQUIRE_S3").is_ok_and(|v| v == "1" || v == "true")
}

/// Path of an external client tool, or `None` (with the reason printed) when it
/// is not installed. Under CI a missing tool fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is not installed, and CI requires it (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// Which registry implementation the tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `wharf serve`, the product.
    Wharf,
    /// Debian's `docker-registry` (distribution 2.8), to validate the tests.
    Reference,
}

impl Flavor {
    pub fn from_env() -> Self {
        match std::env::var("WHARF_E2E_REGISTRY").as_deref() {
            Ok("reference") | Ok("docker-registry") => Flavor::Reference,
            _ => Flavor::Wharf,
        }
    }
}

/// An S3 endpoint to keep blobs in.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Key prefix unique to one test, so tests can share a bucket.
    pub prefix: String,
}

impl S3Target {
    /// moto (broad S3 API, no signature checks), from `WHARF_TEST_S3_*`.
    pub fn moto() -> Option<Self> {
        Self::from_env(
            "WHARF_TEST_S3_ENDPOINT",
            "WHARF_TEST_S3_BUCKET",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        )
    }

    /// s3s-fs (checks SigV4), from `WHARF_TEST_S3S_*`.
    pub fn s3s() -> Option<Self> {
        Self::from_env(
            "WHARF_TEST_S3S_ENDPOINT",
            "WHARF_TEST_S3S_BUCKET",
            "WHARF_TEST_S3S_ACCESS_KEY",
            "WHARF_TEST_S3S_SECRET_KEY",
        )
    }

    fn from_env(endpoint: &str, bucket: &str, key: &str, secret: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(url) = var(endpoint) else {
            assert!(
                !s3_required(),
                "{endpoint} is unset but WHARF_REQUIRE_S3=1: run the suite through scripts/test"
            );
            eprintln!("SKIPPED: {endpoint} is unset (scripts/test starts the S3 servers)");
            return None;
        };
        Some(Self {
            endpoint: url,
            bucket: var(bucket).unwrap_or_else(|| "wharf-test".into()),
            region: var("WHARF_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: var(key).unwrap_or_else(|| "test".into()),
            secret_key: var(secret).unwrap_or_else(|| "test".into()),
            prefix: format!("e2e-{}", uuid::Uuid::new_v4().simple()),
        })
    }
}

/// Where a backend keeps blob bytes.
#[derive(Debug, Clone)]
pub enum Storage {
    Filesystem,
    S3(S3Target),
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

/// A PostgreSQL database created for one test and dropped (best effort) after it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn create() -> Result<Self> {
        use sqlx::Connection;
        let admin_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let name = format!("wharf_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to {} (set DATABASE_URL)", redact(&admin_url)))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .context("CREATE DATABASE")?;
        conn.close().await.ok();
        let url = with_database(&admin_url, &name);
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let admin_url = self.admin_url.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // throwaway thread with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            use sqlx::Connection;
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `url` with its database (path) replaced by `database`, query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// One registry's persistent state: data directory, database and storage.
/// Several [`Server`]s may run on one backend at once (scale-out) or one after
/// another (restart after a crash).
pub struct Backend {
    pub flavor: Flavor,
    pub storage: Storage,
    dir: TempDir,
    db: Option<TestDb>,
    started: std::sync::atomic::AtomicUsize,
}

impl Backend {
    /// Filesystem storage under a fresh temporary data directory.
    pub async fn new() -> Self {
        Self::with_storage(Storage::Filesystem).await
    }

    pub async fn with_storage(storage: Storage) -> Self {
        let flavor = Flavor::from_env();
        let dir = tempfile::Builder::new()
            .prefix("wharf-e2e-")
            .tempdir()
            .expect("temp dir");
        let db = match flavor {
            Flavor::Wharf => Some(TestDb::create().await.expect("test database")),
            Flavor::Reference => None,
        };
        Self {
            flavor,
            storage,
            dir,
            db,
            started: Default::default(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> Option<&str> {
        self.db.as_ref().map(|db| db.url.as_str())
    }

    /// Start a server on this backend and wait until it is ready.
    pub async fn start(&self) -> Server {
        self.start_with_env(&[]).await
    }

    /// [`Backend::start`] with extra environment for the server, such as
    /// `WHARF_CONFIG` naming a file with the settings a test needs.
    pub async fn start_with_env(&self, env: &[(&str, String)]) -> Server {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log_path = self.dir.path().join(format!("server-{n}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut cmd = match self.flavor {
            Flavor::Wharf => self.wharf_command(&addr),
            Flavor::Reference => self.reference_command(&addr, n),
        };
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        let child = cmd.spawn().expect("spawning the registry");
        let mut server = Server {
            child: Some(child),
            base: format!("http://{addr}"),
            log_path,
            flavor: self.flavor,
        };
        server.wait_ready().await;
        server
    }

    fn wharf_command(&self, addr: &str) -> Command {
        self.wharf_process(&["serve", "--listen", addr])
    }

    /// `wharf worker` on this backend with `env`, its output in
    /// `worker-<n>.log`; killed when the returned guard drops.
    pub fn start_worker(&self, env: &[(&str, String)]) -> Worker {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log_path = self.dir.path().join(format!("worker-{n}.log"));
        let log = File::create(&log_path).expect("worker log");
        let mut cmd = self.wharf_process(&["worker"]);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        Worker {
            child: cmd.spawn().expect("spawning wharf worker"),
            log_path,
        }
    }

    /// The `wharf` binary with `args`, this backend's data directory and
    /// database, and none of the test's own `WHARF_*` environment.
    fn wharf_process(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(args).arg("--data-dir").arg(self.dir.path());
        // The test's own environment must not leak configuration into the server.
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| k.starts_with("WHARF_") || k == "DATABASE_URL")
            {
                cmd.env_remove(key);
            }
        }
        cmd.env(
            "DATABASE_URL",
            self.database_url().expect("wharf backends have a database"),
        );
        cmd.env(
            "WHARF_LOG_LEVEL",
            std::env::var("WHARF_E2E_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.env("WHARF_ADMIN_PASSWORD", E2E_ADMIN.1);
        if let Storage::S3(s3) = &self.storage {
            cmd.env("WHARF_STORAGE_TYPE", "s3")
                .env("WHARF_STORAGE_S3_BUCKET", &s3.bucket)
                .env("WHARF_STORAGE_S3_ENDPOINT", &s3.endpoint)
                .env("WHARF_STORAGE_S3_REGION", &s3.region)
                .env("WHARF_STORAGE_S3_PATH_STYLE", "true")
                .env("WHARF_STORAGE_S3_ALLOW_HTTP", "true")
                .env("WHARF_STORAGE_S3_ACCESS_KEY_ID", &s3.access_key)
                .env("WHARF_STORAGE_S3_SECRET_ACCESS_KEY", &s3.secret_key)
                .env("WHARF_STORAGE_S3_PREFIX", &s3.prefix);
        }
        cmd
    }

    fn reference_command(&self, addr: &str, n: usize) -> Command {
        let storage = match &self.storage {
            Storage::Filesystem => format!(
                "  filesystem:\n    rootdirectory: {}\n",
                self.dir.path().join("storage").display()
            ),
            Storage::S3(s3) => format!(
                "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    \
                 regionendpoint: {}\n    bucket: {}\n    secure: false\n    v4auth: true\n    \
                 rootdirectory: /{}\n    chunksize: 5242880\n",
                s3.access_key, s3.secret_key, s3.region, s3.endpoint, s3.bucket, s3.prefix
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n{storage}  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  \
             secret: wharf-e2e-shared-secret\n"
        );
        let path = self.dir.path().join(format!("registry-{n}.yml"));
        fs::write(&path, config).expect("writing docker-registry config");
        let bin = std::env::var("WHARF_E2E_REFERENCE_BIN")
            .unwrap_or_else(|_| "/usr/bin/docker-registry".into());
        let mut cmd = Command::new(bin);
        // distribution's S3 driver panics on a CA bundle it cannot apply to its
        // plain-HTTP transport.
        cmd.arg("serve").arg(path).env_remove("AWS_CA_BUNDLE");
        cmd
    }
}

/// A running `wharf worker`, killed when dropped (its log printed if the
/// test is failing).
pub struct Worker {
    child: Child,
    log_path: PathBuf,
}

impl Worker {
    /// The worker's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- worker log ----\n{}\n----", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running registry process. Killed (SIGKILL) when dropped; its log is printed
/// if the test is failing.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log_path: PathBuf,
    flavor: Flavor,
}

impl Server {
    /// `host:port`, as container tools want it in image references.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `POST /api/v2.0/projects` as the administrator (the reference registry
    /// has no projects: nothing to do there).
    pub async fn create_project(&self, name: &str, public: bool) -> Result<()> {
        if self.flavor == Flavor::Reference {
            return Ok(());
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2.0/projects", self.base))
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
            .json(&json!({ "project_name": name, "metadata": { "public": public.to_string() } }))
            .send()
            .await?;
        ensure!(
            resp.status() == StatusCode::CREATED,
            "creating project {name}: {}",
            describe(resp).await
        );
        Ok(())
    }

    /// Basic credentials of the administrator as container tools take them.
    pub fn admin_creds(&self) -> String {
        format!("{}:{}", E2E_ADMIN.0, E2E_ADMIN.1)
    }

    async fn wait_ready(&mut self) {
        let probe = match self.flavor {
            Flavor::Wharf => format!("{}/api/v2.0/ping", self.base),
            Flavor::Reference => format!("{}/v2/", self.base),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "registry exited during start-up ({status}); log:\n{}",
                    self.log_tail(60)
                );
            }
            if let Ok(resp) = http.get(&probe).send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "registry not ready after {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no chance to flush, close or clean up anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut f) = File::open(&self.log_path) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} ----\n{}\n----",
                self.base,
                self.log_tail(40)
            );
        }
        self.kill9();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ---------------------------------------------------------------------------
// Test content
// ---------------------------------------------------------------------------

/// splitmix64, seeded from the OS: random test content without a `rand` dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Content-addressed bytes with their media type.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// A single-platform image: config, layers and the manifest naming them.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
}

impl Image {
    /// Config and layers: what must be pushed before the manifest.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// A multi-platform image: the index and its per-platform images.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    pub index: Blob,
    pub images: Vec<Image>,
}

/// A gzip tar layer of random files; returns the layer and its diff_id (the
/// digest of the uncompressed tar, which clients that unpack layers verify).
pub fn random_layer(rng: &mut Rng, total_bytes: usize) -> (Blob, String) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    dir.set_mtime(1_700_000_000);
    builder
        .append_data(&mut dir, "data/", std::io::empty())
        .expect("tar dir");
    let files = (total_bytes / (256 * 1024)).clamp(1, 8);
    let per_file = total_bytes / files;
    let tag = rng.next_u64();
    for i in 0..files {
        let content = rng.bytes(per_file);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(
                &mut header,
                format!("data/{tag:016x}-{i}.bin"),
                content.as_slice(),
            )
            .expect("tar file");
    }
    let tar_bytes = builder.into_inner().expect("tar");
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip");
    (
        Blob::new(OCI_LAYER_GZIP, gz.finish().expect("gzip")),
        diff_id,
    )
}

/// An image for `linux/<arch>` with `layers` random layers of about
/// `layer_bytes` each.
pub fn random_image(rng: &mut Rng, layers: usize, layer_bytes: usize, arch: &str) -> Image {
    let (layers, diff_ids): (Vec<Blob>, Vec<String>) =
        (0..layers).map(|_| random_layer(rng, layer_bytes)).unzip();
    let history: Vec<Value> = (0..layers.len())
        .map(|i| json!({ "created_by": format!("wharf e2e layer {i}") }))
        .collect();
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Cmd": ["/bin/true"], "Labels": { "wharf.e2e.nonce": format!("{:x}", rng.next_u64()) } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    let config = Blob::new(
        OCI_CONFIG,
        serde_json::to_vec(&config).expect("config json"),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(
        OCI_MANIFEST,
        serde_json::to_vec(&manifest).expect("manifest json"),
    );
    Image {
        config,
        layers,
        manifest,
    }
}

/// A linux/amd64 + linux/arm64 image index.
pub fn random_index(rng: &mut Rng, layers: usize, layer_bytes: usize) -> ImageIndex {
    let images: Vec<Image> = ["amd64", "arm64"]
        .iter()
        .map(|arch| random_image(rng, layers, layer_bytes, arch))
        .collect();
    let manifests: Vec<Value> = images
        .iter()
        .zip(["amd64", "arm64"])
        .map(|(img, arch)| {
            let mut d = img.manifest.descriptor();
            d["platform"] = json!({ "architecture": arch, "os": "linux" });
            d
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    ImageIndex {
        index: Blob::new(OCI_INDEX, serde_json::to_vec(&index).expect("index json")),
        images,
    }
}

/// Write an OCI image layout at `dir` whose `index.json` tags `top` (a manifest
/// or an index) as `tag`; `blobs` are every other blob it needs.
pub fn write_oci_layout<'a>(
    dir: &Path,
    tag: &str,
    top: &'a Blob,
    blobs: impl IntoIterator<Item = &'a Blob>,
) -> Result<()> {
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for blob in std::iter::once(top).chain(blobs) {
        let hex = blob
            .digest
            .strip_prefix("sha256:")
            .context("sha256 digest")?;
        fs::write(blob_dir.join(hex), &blob.bytes)?;
    }
    let mut top_desc = top.descriptor();
    top_desc["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top_desc] });
    fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    Ok(())
}

/// The descriptor `index.json` of the OCI layout at `dir` gives for `tag`.
pub fn oci_layout_descriptor(dir: &Path, tag: &str) -> Result<Value> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json"))?)?;
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
        .ok_or_else(|| anyhow!("tag {tag} not in {}", dir.display()))
}

/// The bytes of blob `digest` in the OCI layout at `dir`, checked against the digest.
pub fn oci_layout_blob(dir: &Path, digest: &str) -> Result<Vec<u8>> {
    let hex = digest.strip_prefix("sha256:").context("sha256 digest")?;
    let bytes = fs::read(dir.join("blobs").join("sha256").join(hex))
        .with_context(|| format!("blob {digest} missing from {}", dir.display()))?;
    ensure!(
        sha256_digest(&bytes) == digest,
        "blob {digest} in the layout has other content"
    );
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// Distribution API client
// ---------------------------------------------------------------------------

/// The administrator every e2e Wharf starts with (`WHARF_ADMIN_PASSWORD`).
pub const E2E_ADMIN: (&str, &str) = ("admin", "Wharf-e2e-Admin1");

/// A raw OCI distribution client: every request spelled out, so tests say
/// exactly which server gets which step. It speaks Docker token auth.
#[derive(Clone)]
pub struct Oci {
    pub http: reqwest::Client,
    credentials: Option<(String, String)>,
    tokens: TokenCache,
}

/// Tokens by (registry origin, scope); `None` when the registry needs none.
type TokenCache = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<(String, Option<String>), Option<String>>>,
>;

/// The token scope a `/v2` path needs: the repository's, the catalog's, or
/// none for the base endpoint.
fn scope_for(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return None;
    }
    if rest == "_catalog" {
        return Some("registry:catalog:*".to_owned());
    }
    let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker))
        .max()?;
    Some(format!("repository:{}:pull,push,delete", &rest[..end]))
}

/// `Bearer realm="…",service="…"` → its parameters.
pub fn challenge_params(challenge: &str) -> std::collections::HashMap<String, String> {
    let mut params = std::collections::HashMap::new();
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_owned(), value);
    }
    params
}

impl Default for Oci {
    fn default() -> Self {
        Self::new()
    }
}

/// A blob upload session: its `Location` and how many bytes the server holds.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Path and query of the session's `Location` (server-independent).
    pub location: String,
    pub offset: u64,
}

/// A manifest as pulled.
#[derive(Debug)]
pub struct Pulled {
    pub status: StatusCode,
    pub bytes: Vec<u8>,
    pub headers: HeaderMap,
}

impl Pulled {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Oci {
    /// A client signed in as the e2e administrator ([`E2E_ADMIN`]).
    pub fn new() -> Self {
        Self::signed_in(E2E_ADMIN.0, E2E_ADMIN.1)
    }

    /// A client that logs in as `user` with `password` when a registry asks.
    pub fn signed_in(user: &str, password: &str) -> Self {
        Self::with_credentials(Some((user.to_owned(), password.to_owned())))
    }

    /// A client without credentials (anonymous tokens only).
    pub fn anonymous() -> Self {
        Self::with_credentials(None)
    }

    fn with_credentials(credentials: Option<(String, String)>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(8)
            .build()
            .expect("http client");
        Self {
            http,
            credentials,
            tokens: Default::default(),
        }
    }

    /// Send a request with the token its repository needs. The first request
    /// to a repository probes `GET /v2/`: a registry that answers 200 needs no
    /// token (the reference registry); one that challenges with `Bearer` gets
    /// a token for `pull,push,delete` on the repository from the challenge's
    /// realm (with Basic credentials, if any), cached for the client's life.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let mut req = rb.build()?;
        if let Some(token) = self.token_for(req.url()).await? {
            req.headers_mut().insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("token header"),
            );
        }
        self.http.execute(req).await
    }

    async fn token_for(&self, url: &reqwest::Url) -> reqwest::Result<Option<String>> {
        let origin = url.origin().ascii_serialization();
        let scope = scope_for(url.path());
        let key = (origin.clone(), scope.clone());
        if let Some(cached) = self.tokens.lock().expect("token cache").get(&key) {
            return Ok(cached.clone());
        }
        let probe = self.http.get(format!("{origin}/v2/")).send().await?;
        let challenge = probe
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let token = match challenge {
            Some(c) if probe.status() == StatusCode::UNAUTHORIZED && c.starts_with("Bearer ") => {
                let params = challenge_params(&c);
                let realm = params.get("realm").cloned().unwrap_or_default();
                let mut url = reqwest::Url::parse(&realm).expect("the realm is a URL");
                url.query_pairs_mut()
                    .append_pair("service", params.get("service").map_or("", String::as_str));
                if let Some(scope) = &scope {
                    url.query_pairs_mut().append_pair("scope", scope);
                }
                let mut req = self.http.get(url);
                if let Some((user, password)) = &self.credentials {
                    req = req.basic_auth(user, Some(password));
                }
                let resp = req.send().await?.error_for_status()?;
                let body: Value = resp.json().await?;
                body["token"].as_str().map(str::to_owned)
            }
            _ => None,
        };
        self.tokens
            .lock()
            .expect("token cache")
            .insert(key, token.clone());
        Ok(token)
    }

    /// `POST /v2/<repo>/blobs/uploads/` → 202 with a `Location`.
    pub async fn start_upload(&self, base: &str, repo: &str) -> Result<Upload> {
        let resp = self
            .send(
                self.http
                    .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0),
            )
            .await?;
        ensure!(
            resp.status() == StatusCode::ACCEPTED,
            "POST upload: {}",
            describe(resp).await
        );
        Ok(Upload {
            location: location_path(resp.headers())?,
            offset: 0,
        })
    }

    /// `PATCH` one chunk with `Content-Range` at the session's offset, sent to
    /// `base` (which need not be the server that started the session). Checks the
    /// returned `Range` covers everything uploaded so far.
    pub async fn patch_chunk(&self, base: &str, upload: &mut Upload, chunk: &[u8]) -> Result<()> {
        let start = upload.offset;
        let end = start + chunk.len() as u64 - 1;
        let resp = self
            .send(
                self.http
                    .patch(format!("{base}{}", upload.location))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", format!("{start}-{end}"))
                    .header(CONTENT_LENGTH, chunk.len())
                    .body(chunk.to_vec()),
            )
            .await?;
        ensure!(
            resp.status() == StatusCode::ACCEPTED,
            "PATCH {start}-{end}: {}",
            describe(resp).await
        );
        let range = resp
            .headers()
            .get("Range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ensure!(
            range == format!("0-{end}"),
            "PATCH {start}-{end} answered Range {range:?}"
        );
        upload.location = location_path(resp.headers())?;
        upload.offset = end + 1;
        Ok(())
    }

    /// Closing `PUT ?digest=`, optionally with a last chunk; → 201. Returns the
    /// `Docker-Content-Digest` the server answered.
    pub async fn finish_upload(
        &self,
        base: &str,
        upload: &Upload,
        digest: &str,
        last_chunk: Option<&[u8]>,
    ) -> Result<String> {
        let sep = if upload.location.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut req = self
            .http
            .put(format!("{base}{}{sep}digest={digest}", upload.location));
        req = match last_chunk {
            Some(chunk) if !chunk.is_empty() => {
                let start = upload.offset;
                let end = start + chunk.len() as u64 - 1;
                req.header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", format!("{start}-{end}"))
                    .header(CONTENT_LENGTH, chunk.len())
                    .body(chunk.to_vec())
            }
            _ => req.header(CONTENT_LENGTH, 0),
        };
        let resp = self.send(req).await?;
        ensure!(
            resp.status() == StatusCode::CREATED,
            "PUT ?digest: {}",
            describe(resp).await
        );
        let answered = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(digest)
            .to_owned();
        ensure!(
            answered == digest,
            "upload closed as {answered}, expected {digest}"
        );
        Ok(answered)
    }

    /// Monolithic push: `POST`, then `PUT ?digest=` with the whole body.
    pub async fn push_blob(&self, base: &str, repo: &str, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let upload = self.start_upload(base, repo).await?;
        let sep = if upload.location.contains('?') {
            '&'
        } else {
            '?'
        };
        let resp = self
            .send(
                self.http
                    .put(format!("{base}{}{sep}digest={digest}", upload.location))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, bytes.len())
                    .body(bytes.to_vec()),
            )
            .await?;
        ensure!(
            resp.status() == StatusCode::CREATED,
            "monolithic PUT: {}",
            describe(resp).await
        );
        Ok(digest)
    }

    /// Chunked push: `POST`, `PATCH`es of `chunk` bytes, then `PUT ?digest=`.
    pub async fn push_blob_chunked(
        &self,
        base: &str,
        repo: &str,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<String> {
        let digest = sha256_digest(bytes);
        let mut upload = self.start_upload(base, repo).await?;
        for part in bytes.chunks(chunk) {
            self.patch_chunk(base, &mut upload, part).await?;
        }
        self.finish_upload(base, &upload, &digest, None).await?;
        Ok(digest)
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the response status and the
    /// `Docker-Content-Digest` it carried.
    pub async fn put_manifest(
        &self,
        base: &str,
        repo: &str,
        reference: &str,
        manifest: &Blob,
    ) -> Result<(StatusCode, Option<String>)> {
        let resp = self
            .send(
                self.http
                    .put(format!("{base}/v2/{repo}/manifests/{reference}"))
                    .header(CONTENT_TYPE, &manifest.media_type)
                    .body(manifest.bytes.clone()),
            )
            .await?;
        let status = resp.status();
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != StatusCode::CREATED {
            bail!("PUT manifest {repo}:{reference}: {}", describe(resp).await);
        }
        Ok((status, digest))
    }

    /// Push every blob of `image` (monolithically) and its manifest as `tag`.
    pub async fn push_image(&self, base: &str, repo: &str, tag: &str, image: &Image) -> Result<()> {
        for blob in image.blobs() {
            self.push_blob(base, repo, &blob.bytes).await?;
        }
        let (_, digest) = self.put_manifest(base, repo, tag, &image.manifest).await?;
        if let Some(d) = digest {
            ensure!(
                d == image.manifest.digest,
                "manifest stored as {d}, pushed {}",
                image.manifest.digest
            );
        }
        Ok(())
    }

    /// `GET /v2/<repo>/manifests/<reference>` with every manifest type accepted.
    pub async fn get_manifest(&self, base: &str, repo: &str, reference: &str) -> Result<Pulled> {
        let resp = self
            .send(
                self.http
                    .get(format!("{base}/v2/{repo}/manifests/{reference}"))
                    .header("Accept", MANIFEST_ACCEPT),
            )
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?.to_vec();
        Ok(Pulled {
            status,
            bytes,
            headers,
        })
    }

    /// `GET /v2/<repo>/blobs/<digest>`: status and body.
    pub async fn get_blob(
        &self,
        base: &str,
        repo: &str,
        digest: &str,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let resp = self
            .send(self.http.get(format!("{base}/v2/{repo}/blobs/{digest}")))
            .await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?.to_vec()))
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: status only.
    pub async fn head_blob(&self, base: &str, repo: &str, digest: &str) -> Result<StatusCode> {
        Ok(self
            .send(self.http.head(format!("{base}/v2/{repo}/blobs/{digest}")))
            .await?
            .status())
    }

    /// `GET /v2/<repo>/tags/list` (empty when the repository is unknown).
    pub async fn tags(&self, base: &str, repo: &str) -> Result<Vec<String>> {
        let resp = self
            .send(self.http.get(format!("{base}/v2/{repo}/tags/list")))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        ensure!(
            resp.status() == StatusCode::OK,
            "tags/list: {}",
            describe(resp).await
        );
        let body: Value = resp.json().await?;
        Ok(body["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect())
    }

    /// The blob must download from `base` with exactly the expected content.
    pub async fn assert_blob(&self, base: &str, repo: &str, blob: &Blob) -> Result<()> {
        let (status, bytes) = self.get_blob(base, repo, &blob.digest).await?;
        ensure!(
            status == StatusCode::OK,
            "GET blob {} from {base}: {status}",
            blob.digest
        );
        ensure!(
            bytes.len() == blob.bytes.len(),
            "blob {} has {} bytes, expected {}",
            blob.digest,
            bytes.len(),
            blob.bytes.len()
        );
        ensure!(
            sha256_digest(&bytes) == blob.digest,
            "blob {} pulled with other content",
            blob.digest
        );
        Ok(())
    }

    /// `repo:reference` must pull from `base` as exactly `image`: manifest bytes,
    /// digest header, config and every layer.
    pub async fn assert_image(
        &self,
        base: &str,
        repo: &str,
        reference: &str,
        image: &Image,
    ) -> Result<()> {
        let pulled = self.get_manifest(base, repo, reference).await?;
        ensure!(
            pulled.status == StatusCode::OK,
            "GET manifest {repo}:{reference} from {base}: {}",
            pulled.status
        );
        ensure!(
            sha256_digest(&pulled.bytes) == image.manifest.digest,
            "manifest {repo}:{reference} pulled with other bytes"
        );
        if let Some(d) = pulled.header("Docker-Content-Digest") {
            ensure!(
                d == image.manifest.digest,
                "Docker-Content-Digest {d}, expected {}",
                image.manifest.digest
            );
        }
        for blob in image.blobs() {
            self.assert_blob(base, repo, blob).await?;
        }
        Ok(())
    }
}

/// Path and query of a response's `Location`, whether absolute or relative.
fn location_path(headers: &HeaderMap) -> Result<String> {
    let loc = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("no Location header"))?;
    Ok(strip_origin(loc).to_owned())
}

/// `http://host:port/path?q` → `/path?q`; relative URLs unchanged.
pub fn strip_origin(url: &str) -> &str {
    match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("/", |j| &url[i + 3 + j..]),
        None => url,
    }
}

async fn describe(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    format!("{status} {body}")
}

// ---------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------

/// Run a command, failing with its output if it does not succeed; returns stdout.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

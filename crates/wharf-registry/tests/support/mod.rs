//! A real registry for tests: the `/v2` service on a random port, its own
//! PostgreSQL database (created from `DATABASE_URL`, dropped afterwards) and
//! its own filesystem store.

#![allow(dead_code)]

use std::sync::mpsc;

use sha2::Digest as _;
use sqlx::Connection;
use wharf_registry::{Registry, RegistryConfig};
use wharf_store::{BlobStore, StorageConfig};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db_name: String,
    pub storage: tempfile::TempDir,
    server: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|r| r).await
    }

    /// Start a registry; `customise` may plug seams in.
    pub async fn spawn_with(
        customise: impl FnOnce(Registry) -> Registry + Send + 'static,
    ) -> TestApp {
        let admin_url = database_url();
        let db_name = format!("wharf_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&db_name);
        let url = url.to_string();

        let storage = tempfile::tempdir().unwrap();
        let root = storage.path().to_path_buf();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(&url)
                    .await
                    .unwrap();
                sqlx::migrate!("../../migrations").run(&pool).await.unwrap();
                let store = BlobStore::from_config(&StorageConfig::Filesystem { root })
                    .await
                    .unwrap();
                let registry = customise(Registry::new(pool, store, RegistryConfig::default()));
                let server = actix_web::HttpServer::new(move || {
                    let registry = registry.clone();
                    actix_web::App::new().configure(move |cfg| registry.configure(cfg))
                })
                .workers(2)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (port, server) = rx.recv().expect("test server failed to start");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            db_name,
            storage,
            server,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    /// Push a blob monolithically; returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "monolithic push: {}",
            resp.text().await.unwrap()
        );
        digest
    }

    /// PATCH one chunk with its `Content-Range` (Content-Length follows the body).
    pub async fn patch_chunk(
        &self,
        location: &str,
        content_range: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .patch(location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", content_range)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Push a manifest under `reference`; returns the response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Push config + `layers` random layers and an OCI manifest tagged `tag`.
    /// Returns (manifest bytes, manifest digest).
    pub async fn push_image(&self, repo: &str, tag: &str, layers: usize) -> (Vec<u8>, String) {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":"{}"}}"#,
            uuid::Uuid::new_v4()
        );
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let mut descriptors = Vec::new();
        for i in 0..layers {
            let layer: Vec<u8> = format!("layer {i} {}", uuid::Uuid::new_v4()).into_bytes();
            let d = self.push_blob(repo, &layer).await;
            descriptors
                .push(serde_json::json!({"mediaType": LAYER, "digest": d, "size": layer.len()}));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let resp = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(
            resp.status(),
            201,
            "manifest push: {}",
            resp.text().await.unwrap()
        );
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let server = self.server.clone();
        let thread = self.thread.take();
        let db_name = self.db_name.clone();
        // Stop the server and drop the database on a thread of its own: Drop may
        // run inside the test's runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                server.stop(false).await;
                if let Some(t) = thread {
                    let _ = t.join();
                }
                if let Ok(mut admin) = sqlx::PgConnection::connect(&database_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join()
        .ok();
    }
}

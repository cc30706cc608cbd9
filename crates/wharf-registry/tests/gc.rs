//! Garbage collection against a real PostgreSQL and real stores: what goes,
//! what stays, the grace period, dry runs, untagged artifacts, orphaned
//! bytes, S3, and the race with pushes forced in both orders.
//!
//! Pushes go through the `/v2` server of `TestApp`; the collector is a
//! second `Registry` on the same database and storage, as another replica
//! (or `wharf gc`) would be.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use support::*;
use wharf_registry::gc::{GcError, GcObserver, GcOptions, GcReport};
use wharf_registry::seams::{
    Admission, AdmissionError, Deletion, EventSink, ManifestPush, RegistryEvent,
};
use wharf_registry::{Registry, RegistryConfig};
use wharf_store::{BlobStore, S3Config, StorageConfig};

/// 0x0b10_b000: the first key of the registry's blob locks.
const BLOB_LOCK_CLASS: i64 = 0x0b10_b000;

fn db_url(db_name: &str) -> String {
    let mut url = url::Url::parse(&database_url()).unwrap();
    url.set_path(db_name);
    url.to_string()
}

/// Events the collector hands to its sink.
#[derive(Default)]
struct Recorded(Mutex<Vec<RegistryEvent>>);

#[async_trait]
impl EventSink for Recorded {
    async fn record_change(&self, _: &mut PgConnection, event: &RegistryEvent) -> sqlx::Result<()> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn record_pull(&self, _: RegistryEvent) {}
}

/// Refuses to delete one digest, as an immutability rule would.
struct Protect(String);

#[async_trait]
impl Admission for Protect {
    async fn admit_blob_upload(&self, _: &wharf_oci::RepositoryName) -> Result<(), AdmissionError> {
        Ok(())
    }
    async fn admit_manifest(
        &self,
        _: &mut PgConnection,
        _: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        Ok(())
    }
    async fn admit_delete(
        &self,
        _: &mut PgConnection,
        deletion: &Deletion<'_>,
    ) -> Result<(), AdmissionError> {
        if deletion.digest.map(|d| d.to_string()).as_deref() == Some(self.0.as_str()) {
            return Err(AdmissionError::Denied {
                message: "protected by policy".into(),
            });
        }
        Ok(())
    }
}

/// Keeps the log; asks to stop when told to.
#[derive(Default)]
struct Watch {
    lines: Mutex<Vec<String>>,
    stop: bool,
}

#[async_trait]
impl GcObserver for Watch {
    async fn log(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_owned());
    }
    async fn stop_requested(&self) -> bool {
        self.stop
    }
}

/// The collector: another registry on the app's database and storage.
struct Collector {
    registry: Registry,
    pool: PgPool,
    root: PathBuf,
    events: Arc<Recorded>,
}

impl Collector {
    async fn for_app(app: &TestApp, grace_secs: u64) -> Self {
        let root = app.storage.path().to_path_buf();
        let store = BlobStore::from_config(&StorageConfig::Filesystem { root: root.clone() })
            .await
            .unwrap();
        Self::with_store(&app.db_name, store, root, grace_secs).await
    }

    async fn with_store(db_name: &str, store: BlobStore, root: PathBuf, grace_secs: u64) -> Self {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&db_url(db_name))
            .await
            .unwrap();
        let events = Arc::new(Recorded::default());
        let config = RegistryConfig {
            gc_grace_period_secs: grace_secs,
            ..RegistryConfig::default()
        };
        let registry = Registry::new(pool.clone(), store, config).with_events(events.clone());
        Self {
            registry,
            pool,
            root,
            events,
        }
    }

    async fn run(&self, options: GcOptions) -> GcReport {
        let watch = Watch::default();
        let report = self
            .registry
            .collect_garbage(&options, &watch)
            .await
            .expect("garbage collection");
        let lines = watch.lines.lock().unwrap();
        assert!(
            lines[0].starts_with("garbage collection started"),
            "{lines:?}"
        );
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("garbage collection finished"),
            "{lines:?}"
        );
        report
    }

    async fn real(&self) -> GcReport {
        self.run(GcOptions::default()).await
    }

    /// Make everything recorded so far look `secs` older.
    async fn age(&self, secs: i64) {
        for table in ["blobs", "repository_blobs", "manifests"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET created_at = created_at - make_interval(secs => $1)"
            )))
            .bind(secs as f64)
            .execute(&self.pool)
            .await
            .unwrap();
        }
    }

    async fn age_blob(&self, digest: &str, secs: i64) {
        for table in ["blobs", "repository_blobs"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET created_at = now() - make_interval(secs => $1) WHERE digest = $2"
            )))
            .bind(secs as f64)
            .bind(digest)
            .execute(&self.pool)
            .await
            .unwrap();
        }
    }

    fn file(&self, digest: &str) -> PathBuf {
        blob_file(&self.root, digest)
    }

    async fn has_row(&self, digest: &str) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = $1)")
            .bind(digest)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Row and bytes both present (true) or both absent (false).
    async fn present(&self, digest: &str) -> bool {
        let row = self.has_row(digest).await;
        let file = self.file(digest).exists();
        assert_eq!(row, file, "{digest}: row {row}, bytes {file}");
        row
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// The invariant the design exists for: every blob row has its bytes,
    /// every blob a manifest references has its row and its repository's
    /// link, every index's children exist.
    async fn assert_consistent(&self) {
        let rows: Vec<String> = sqlx::query_scalar("SELECT digest FROM blobs")
            .fetch_all(&self.pool)
            .await
            .unwrap();
        for digest in rows {
            assert!(self.file(&digest).exists(), "row without bytes: {digest}");
        }
        let dangling: Vec<String> = sqlx::query_scalar(
            "SELECT mr.digest FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
              WHERE (mr.kind = 'blob' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
                                                       WHERE rb.repository_id = m.repository_id
                                                         AND rb.digest = mr.digest))
                 OR (mr.kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests c
                                                           WHERE c.repository_id = m.repository_id
                                                             AND c.digest = mr.digest))",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
    }
}

fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap();
    root.join("blobs").join(algorithm).join(&hex[..2]).join(hex)
}

fn image(config: &(String, usize), layers: &[(String, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, n)| json!({"mediaType": LAYER, "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

/// Push `bytes` as a blob of `repo`; returns (digest, size).
async fn blob(app: &TestApp, repo: &str, bytes: &[u8]) -> (String, usize) {
    (app.push_blob(repo, bytes).await, bytes.len())
}

fn unique(what: &str) -> Vec<u8> {
    format!("{what} {}", uuid::Uuid::new_v4()).into_bytes()
}

async fn put_ok(app: &TestApp, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let resp = app.put_manifest(repo, reference, media_type, body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn pull_blob(app: &TestApp, repo: &str, digest: &str) -> Option<Vec<u8>> {
    let resp = app
        .client
        .get(app.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200);
    Some(resp.bytes().await.unwrap().to_vec())
}

async fn manifest_exists(app: &TestApp, repo: &str, reference: &str) -> bool {
    let resp = app
        .client
        .head(app.url(&format!("/v2/{repo}/manifests/{reference}")))
        .send()
        .await
        .unwrap();
    resp.status() == 200
}

async fn delete_manifest(app: &TestApp, repo: &str, digest: &str) {
    let resp = app
        .client
        .delete(app.url(&format!("/v2/{repo}/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn unreferenced_blobs_go_referenced_ones_stay_and_bytes_leave_the_disk() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let repo = "library/app";
    let shared = blob(&app, repo, &unique("shared layer")).await;
    let kept_config = blob(&app, repo, &unique("config a")).await;
    let kept_layer = blob(&app, repo, &unique("layer a")).await;
    let kept = image(&kept_config, &[shared.clone(), kept_layer.clone()]);
    put_ok(&app, repo, "v1", OCI_MANIFEST, &kept).await;
    let gone_config = blob(&app, repo, &unique("config b")).await;
    let gone_layer = blob(&app, repo, &unique("layer b")).await;
    let gone = image(&gone_config, &[shared.clone(), gone_layer.clone()]);
    put_ok(&app, repo, "v2", OCI_MANIFEST, &gone).await;
    delete_manifest(&app, repo, &sha256(&gone)).await;
    let stray = blob(&app, repo, &unique("never referenced")).await;
    // Referenced in another repository only: the link here goes, the blob stays.
    let elsewhere = blob(&app, "library/other", &unique("other layer")).await;
    app.push_blob(repo, &std::fs::read(gc.file(&elsewhere.0)).unwrap())
        .await;
    let other = image(
        &blob(&app, "library/other", &unique("cfg")).await,
        std::slice::from_ref(&elsewhere),
    );
    put_ok(&app, "library/other", "v1", OCI_MANIFEST, &other).await;
    gc.age(3 * 3600).await;

    let report = gc.real().await;
    assert!(!report.dry_run);
    let freed = gone_config.1 + gone_layer.1 + stray.1 + gone.len();
    assert_eq!(report.blobs_deleted, 4, "{report:?}");
    assert_eq!(report.bytes_freed, freed as u64, "{report:?}");
    assert_eq!(report.manifests_deleted, 0);
    // gone's config and layer, the stray, and `elsewhere` in `repo` (the
    // manifest's own link went with the manifest).
    assert_eq!(report.links_removed, 4, "{report:?}");
    for digest in [&gone_config.0, &gone_layer.0, &stray.0, &sha256(&gone)] {
        assert!(!gc.present(digest).await, "{digest} should be gone");
    }
    for digest in [
        &kept_config.0,
        &kept_layer.0,
        &shared.0,
        &sha256(&kept),
        &elsewhere.0,
    ] {
        assert!(gc.present(digest).await, "{digest} should stay");
    }
    // What stays still pulls, byte for byte.
    for (digest, _) in [&kept_config, &kept_layer, &shared] {
        let bytes = pull_blob(&app, repo, digest)
            .await
            .expect("kept blob pulls");
        assert_eq!(sha256(&bytes), *digest);
    }
    assert!(
        pull_blob(&app, repo, &elsewhere.0).await.is_none(),
        "unlinked here"
    );
    assert!(
        pull_blob(&app, "library/other", &elsewhere.0)
            .await
            .is_some()
    );
    assert!(manifest_exists(&app, repo, "v1").await);
    gc.assert_consistent().await;

    // Nothing left to do.
    let again = gc.real().await;
    assert_eq!(
        (again.blobs_deleted, again.links_removed),
        (0, 0),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_grace_period_protects_what_was_just_uploaded() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let repo = "library/slow";
    let config = blob(&app, repo, &unique("config")).await;
    let layer = blob(&app, repo, &unique("layer")).await;
    let stray = blob(&app, repo, &unique("stray")).await;
    gc.age_blob(&stray.0, 3600).await;

    // The layers wait for their manifest: younger than the grace period.
    let report = gc.real().await;
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    assert!(gc.present(&config.0).await && gc.present(&layer.0).await);
    assert!(
        gc.present(&stray.0).await,
        "an hour old is still within two hours"
    );
    put_ok(
        &app,
        repo,
        "v1",
        OCI_MANIFEST,
        &image(&config, std::slice::from_ref(&layer)),
    )
    .await;

    gc.age_blob(&stray.0, 3 * 3600).await;
    let report = gc.real().await;
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(!gc.present(&stray.0).await);
    assert!(gc.present(&config.0).await && gc.present(&layer.0).await);

    // A fresh link to an old blob protects it too: it is about to be used.
    let relinked = blob(&app, repo, &unique("old but relinked")).await;
    gc.age_blob(&relinked.0, 3 * 3600).await;
    app.push_blob(
        "library/fresh",
        &std::fs::read(gc.file(&relinked.0)).unwrap(),
    )
    .await;
    let report = gc.real().await;
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    assert_eq!(report.links_removed, 1, "the old link in {repo} goes");
    assert!(gc.present(&relinked.0).await);
    assert!(
        pull_blob(&app, "library/fresh", &relinked.0)
            .await
            .is_some()
    );
}

/// Untagged artifacts of every kind, for the dry-run and delete_untagged tests.
struct Zoo {
    repo: &'static str,
    tagged: String,
    tagged_layer: (String, usize),
    untagged: String,
    untagged_layer: (String, usize),
    /// A tagged index and its untagged children.
    index: String,
    children: Vec<String>,
    /// An untagged index whose one child is untagged too.
    loose_index: String,
    loose_child: String,
    loose_child_layer: (String, usize),
    /// A signature of the tagged image, and one of the untagged image.
    kept_signature: String,
    lost_signature: String,
}

async fn zoo(app: &TestApp) -> Zoo {
    let repo = "library/zoo";
    let push_image = |tag: Option<&'static str>| async move {
        let config = blob(app, repo, &unique("config")).await;
        let layer = blob(app, repo, &unique("layer")).await;
        let body = image(&config, std::slice::from_ref(&layer));
        let digest = sha256(&body);
        let reference = tag.map(str::to_owned).unwrap_or_else(|| digest.clone());
        put_ok(app, repo, &reference, OCI_MANIFEST, &body).await;
        (digest, body.len(), layer)
    };
    let (tagged, _, tagged_layer) = push_image(Some("v1")).await;
    let (untagged, _, untagged_layer) = push_image(None).await;
    let index_of = |children: &[(String, usize)]| {
        let entries: Vec<_> = children
            .iter()
            .map(|(d, n)| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": n}))
            .collect();
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        )
        .unwrap()
    };
    let (c1, n1, _) = push_image(None).await;
    let (c2, n2, _) = push_image(None).await;
    let index = index_of(&[(c1.clone(), n1), (c2.clone(), n2)]);
    put_ok(app, repo, "multi", OCI_INDEX, &index).await;
    let (loose_child, n3, loose_child_layer) = push_image(None).await;
    let loose_index = index_of(&[(loose_child.clone(), n3)]);
    put_ok(app, repo, &sha256(&loose_index), OCI_INDEX, &loose_index).await;
    let empty = blob(app, repo, b"{}").await;
    let signature = |subject: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.0, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
        }))
        .unwrap()
    };
    let kept_signature = signature(&tagged);
    put_ok(
        app,
        repo,
        &sha256(&kept_signature),
        OCI_MANIFEST,
        &kept_signature,
    )
    .await;
    let lost_signature = signature(&untagged);
    put_ok(
        app,
        repo,
        &sha256(&lost_signature),
        OCI_MANIFEST,
        &lost_signature,
    )
    .await;
    Zoo {
        repo,
        tagged,
        tagged_layer,
        untagged,
        untagged_layer,
        index: sha256(&index),
        children: vec![c1, c2],
        loose_index: sha256(&loose_index),
        loose_child,
        loose_child_layer,
        kept_signature: sha256(&kept_signature),
        lost_signature: sha256(&lost_signature),
    }
}

#[tokio::test]
async fn delete_untagged_keeps_children_of_tagged_indexes_and_accessories_of_kept_artifacts() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let z = zoo(&app).await;
    gc.age(3 * 3600).await;

    // Without delete_untagged every manifest stays.
    let report = gc.real().await;
    assert_eq!(
        (report.manifests_deleted, report.blobs_deleted),
        (0, 0),
        "{report:?}"
    );

    let report = gc
        .run(GcOptions {
            delete_untagged: true,
            workers: 3,
            ..GcOptions::default()
        })
        .await;
    assert_eq!(report.manifests_deleted, 4, "{report:?}");
    for kept in [
        &z.tagged,
        &z.index,
        &z.children[0],
        &z.children[1],
        &z.kept_signature,
    ] {
        assert!(manifest_exists(&app, z.repo, kept).await, "{kept} stays");
    }
    for gone in [
        &z.untagged,
        &z.lost_signature,
        &z.loose_index,
        &z.loose_child,
    ] {
        assert!(!manifest_exists(&app, z.repo, gone).await, "{gone} goes");
        assert!(!gc.present(gone).await, "{gone}'s bytes go");
    }
    assert!(!gc.present(&z.untagged_layer.0).await);
    assert!(!gc.present(&z.loose_child_layer.0).await);
    assert!(gc.present(&z.tagged_layer.0).await);
    // Each deletion went through the registry's delete path, event and all.
    let events = gc.events.0.lock().unwrap().clone();
    let deleted: Vec<String> = events
        .iter()
        .map(|e| match e {
            RegistryEvent::ManifestDeleted { digest, actor, .. } => {
                assert_eq!(actor.name.as_deref(), Some("garbage-collector"));
                digest.to_string()
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(deleted.len(), 4);
    for gone in [
        &z.untagged,
        &z.lost_signature,
        &z.loose_index,
        &z.loose_child,
    ] {
        assert!(deleted.contains(gone));
    }
    gc.assert_consistent().await;
}

#[tokio::test]
async fn admission_may_keep_an_untagged_artifact_and_recent_ones_are_kept() {
    let app = TestApp::spawn().await;
    let app = &app;
    let repo = "library/policy";
    let make = |what: &'static str| async move {
        let config = blob(app, repo, &unique(what)).await;
        let body = image(&config, &[]);
        put_ok(app, repo, &sha256(&body), OCI_MANIFEST, &body).await;
        sha256(&body)
    };
    let protected = make("protected").await;
    let doomed = make("doomed").await;
    let gc = Collector::for_app(app, 7200).await;
    gc.age(3 * 3600).await;
    let recent = make("recent").await;
    let registry = gc
        .registry
        .clone()
        .with_admission(Arc::new(Protect(protected.clone())));
    let watch = Watch::default();
    let options = GcOptions {
        delete_untagged: true,
        ..GcOptions::default()
    };
    let report = registry.collect_garbage(&options, &watch).await.unwrap();
    assert_eq!(report.manifests_deleted, 1, "{report:?}");
    assert!(manifest_exists(app, repo, &protected).await);
    assert!(manifest_exists(app, repo, &recent).await);
    assert!(!manifest_exists(app, repo, &doomed).await);
    let lines = watch.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&protected) && l.contains("protected by policy")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_dry_run_deletes_nothing_and_predicts_the_real_run() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let z = zoo(&app).await;
    let stray = blob(&app, z.repo, &unique("stray")).await;
    delete_manifest(&app, z.repo, &z.tagged).await;
    gc.age(3 * 3600).await;
    let files_before = count_files(&gc.root.join("blobs"));
    let counts =
        "SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM repository_blobs) * 1000
                        + (SELECT count(*) FROM manifests) * 1000000";
    let rows_before = gc.count(counts).await;

    let options = GcOptions {
        delete_untagged: true,
        dry_run: true,
        ..GcOptions::default()
    };
    let predicted = gc.run(options.clone()).await;
    assert!(predicted.dry_run);
    assert!(
        predicted.blobs_deleted > 0 && predicted.manifests_deleted > 0,
        "{predicted:?}"
    );
    assert_eq!(count_files(&gc.root.join("blobs")), files_before);
    assert_eq!(gc.count(counts).await, rows_before);
    assert!(gc.present(&stray.0).await);
    assert!(gc.events.0.lock().unwrap().is_empty(), "no deletion events");

    let actual = gc
        .run(GcOptions {
            dry_run: false,
            ..options
        })
        .await;
    assert_eq!(actual.manifests_deleted, predicted.manifests_deleted);
    assert_eq!(actual.blobs_deleted, predicted.blobs_deleted);
    assert_eq!(actual.bytes_freed, predicted.bytes_freed);
    assert!(!gc.present(&stray.0).await);
    gc.assert_consistent().await;
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        n += if p.is_dir() { count_files(&p) } else { 1 };
    }
    n
}

#[tokio::test]
async fn orphaned_bytes_are_swept_once_out_of_the_grace_period() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let store = gc.registry.store().clone();
    let put = |bytes: &'static [u8]| {
        let store = store.clone();
        async move {
            let digest = wharf_oci::Digest::of(wharf_oci::DigestAlgorithm::Sha256, bytes);
            store
                .put_verified(&digest, bytes::Bytes::from_static(bytes))
                .await
                .unwrap();
            digest.to_string()
        }
    };
    let old = put(b"left behind by a crash").await;
    let new = put(b"being published right now").await;
    let three_hours_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(gc.file(&old))
        .unwrap()
        .set_modified(three_hours_ago)
        .unwrap();
    let (_, kept) = app.push_image("library/app", "v1", 1).await;
    gc.age(3 * 3600).await;

    let dry = gc
        .run(GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .await;
    assert_eq!(dry.orphans_deleted, 1, "{dry:?}");
    assert!(gc.file(&old).exists());

    let report = gc.real().await;
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    assert_eq!(
        report.orphan_bytes_freed,
        b"left behind by a crash".len() as u64
    );
    assert!(!gc.file(&old).exists());
    assert!(gc.file(&new).exists(), "too recent to be an orphan");
    assert!(gc.present(&kept).await);
    gc.assert_consistent().await;
}

#[tokio::test]
async fn one_collection_at_a_time_and_a_stop_is_honoured() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let stray = blob(&app, "library/app", &unique("stray")).await;
    gc.age(3 * 3600).await;

    let mut other = PgConnection::connect(&db_url(&app.db_name)).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(x'0b10b0c0'::int, 0)")
        .execute(&mut other)
        .await
        .unwrap();
    let busy = gc
        .registry
        .collect_garbage(&GcOptions::default(), &Watch::default())
        .await;
    assert!(matches!(busy, Err(GcError::AlreadyRunning)), "{busy:?}");
    other.close().await.unwrap();

    let stopping = Watch {
        stop: true,
        ..Watch::default()
    };
    let report = gc
        .registry
        .collect_garbage(&GcOptions::default(), &stopping)
        .await
        .unwrap();
    assert!(report.stopped);
    assert_eq!(report.blobs_deleted, 0);
    assert!(gc.present(&stray.0).await);
    assert!(report.summary().ends_with("stopped on request"));
}

/// S3 when `WHARF_TEST_S3_ENDPOINT` is set (moto: see crates/wharf-store/tests).
fn s3_config() -> Option<StorageConfig> {
    let Ok(endpoint) = std::env::var("WHARF_TEST_S3_ENDPOINT") else {
        if std::env::var("WHARF_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("WHARF_REQUIRE_S3=1 but WHARF_TEST_S3_ENDPOINT is not set");
        }
        eprintln!("skipped: set WHARF_TEST_S3_ENDPOINT to run the S3 test");
        return None;
    };
    let env_or = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    Some(StorageConfig::S3(S3Config {
        bucket: env_or("WHARF_TEST_S3_BUCKET", "wharf-test"),
        region: Some(env_or("AWS_REGION", "us-east-1")),
        endpoint: Some(endpoint),
        path_style: true,
        allow_http: true,
        access_key_id: Some(env_or("AWS_ACCESS_KEY_ID", "test")),
        secret_access_key: Some(env_or("AWS_SECRET_ACCESS_KEY", "testtest")),
        session_token: None,
        prefix: Some(format!("wharf-gc-test-{}", uuid::Uuid::new_v4())),
    }))
}

#[tokio::test]
async fn bytes_really_leave_the_s3_bucket() {
    let Some(config) = s3_config() else { return };
    // The app provides the database; the collector works on the bucket.
    let app = TestApp::spawn().await;
    let store = BlobStore::from_config(&config).await.unwrap();
    store.check().await.expect("S3 reachable");
    let gc = Collector::with_store(&app.db_name, store.clone(), PathBuf::new(), 0).await;
    let put = |bytes: Vec<u8>| {
        let store = store.clone();
        async move {
            let digest = wharf_oci::Digest::of(wharf_oci::DigestAlgorithm::Sha256, &bytes);
            store
                .put_verified(&digest, bytes::Bytes::from(bytes))
                .await
                .unwrap();
            digest
        }
    };
    let layer = unique("kept layer");
    let layer_digest = put(layer.clone()).await;
    let garbage = put(unique("garbage")).await;
    let orphan = put(unique("orphan")).await;
    let manifest = image(&(layer_digest.to_string(), layer.len()), &[]);
    let manifest_digest = put(manifest.clone()).await;
    // The rows a push would have written.
    let mut tx = gc.pool.begin().await.unwrap();
    let repo: i64 = sqlx::query_scalar(
        "INSERT INTO repositories (name, project) VALUES ('library/s3', 'library') RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    for (digest, size) in [
        (&layer_digest, layer.len()),
        (&garbage, 7),
        (&manifest_digest, manifest.len()),
    ] {
        sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2)")
            .bind(digest.to_string())
            .bind(size as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2)")
            .bind(repo)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO manifests (repository_id, digest, media_type, size, content)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(repo)
    .bind(manifest_digest.to_string())
    .bind(OCI_MANIFEST)
    .bind(manifest.len() as i64)
    .bind(&manifest)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO manifest_references (manifest_id, digest, kind) VALUES ($1, $2, 'blob')",
    )
    .bind(id)
    .bind(layer_digest.to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, 'v1', $2)")
        .bind(repo)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let report = gc
        .run(GcOptions {
            workers: 5,
            ..GcOptions::default()
        })
        .await;
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    assert_eq!(
        store.stat(&garbage).await.unwrap(),
        None,
        "garbage left the bucket"
    );
    assert_eq!(
        store.stat(&orphan).await.unwrap(),
        None,
        "orphan left the bucket"
    );
    assert!(store.stat(&layer_digest).await.unwrap().is_some());
    assert!(store.stat(&manifest_digest).await.unwrap().is_some());
    assert!(!gc.has_row(&garbage.to_string()).await);
    assert!(gc.has_row(&layer_digest.to_string()).await);
}

// ---------------------------------------------------------------------------
// The race, forced in both orders.
// ---------------------------------------------------------------------------

/// Admission that holds one manifest push inside its transaction (after it
/// took its blob locks and checked its blobs, before it commits) until the
/// test lets it go.
#[derive(Default)]
struct Gate {
    digest: Mutex<Option<String>>,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait]
impl Admission for Gate {
    async fn admit_blob_upload(&self, _: &wharf_oci::RepositoryName) -> Result<(), AdmissionError> {
        Ok(())
    }
    async fn admit_manifest(
        &self,
        _: &mut PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        let held = self.digest.lock().unwrap().as_deref() == Some(&push.digest.to_string());
        if held {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
    async fn admit_delete(
        &self,
        _: &mut PgConnection,
        _: &Deletion<'_>,
    ) -> Result<(), AdmissionError> {
        Ok(())
    }
}

/// Advisory blob-lock requests waiting right now.
async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = $1
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(BLOB_LOCK_CLASS)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_for_waiters(pool: &PgPool, n: i64) {
    for _ in 0..200 {
        if lock_waiters(pool).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} waiting lock requests");
}

#[tokio::test]
async fn a_push_that_commits_first_keeps_its_blobs() {
    let gate = Arc::new(Gate::default());
    let app = {
        let gate = gate.clone();
        TestApp::spawn_with(move |r| r.with_admission(gate)).await
    };
    let gc = Collector::for_app(&app, 7200).await;
    let repo = "library/race";
    // Uploaded long ago, never referenced: garbage, until this push.
    let config = blob(&app, repo, &unique("config")).await;
    let layer = blob(&app, repo, &unique("layer")).await;
    gc.age(3 * 3600).await;
    let body = image(&config, std::slice::from_ref(&layer));
    *gate.digest.lock().unwrap() = Some(sha256(&body));

    let push = {
        let client = app.client.clone();
        let url = app.url(&format!("/v2/{repo}/manifests/v1"));
        let body = body.clone();
        tokio::spawn(async move {
            client
                .put(url)
                .header("Content-Type", OCI_MANIFEST)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    gate.entered.notified().await;
    // The push holds its blobs' shared locks and has checked them; the
    // collector must wait for it.
    let collector = {
        let registry = gc.registry.clone();
        tokio::spawn(async move {
            registry
                .collect_garbage(&GcOptions::default(), &Watch::default())
                .await
        })
    };
    wait_for_waiters(&gc.pool, 1).await;
    assert!(!collector.is_finished());
    gate.release.notify_one();
    assert_eq!(push.await.unwrap(), 201);
    let report = collector.await.unwrap().unwrap();
    assert_eq!(
        (report.blobs_deleted, report.links_removed),
        (0, 0),
        "{report:?}"
    );
    for (digest, _) in [&config, &layer] {
        let bytes = pull_blob(&app, repo, digest).await.expect("blob pulls");
        assert_eq!(sha256(&bytes), *digest);
    }
    gc.assert_consistent().await;
}

#[tokio::test]
async fn a_push_that_comes_second_fails_cleanly_and_succeeds_after_reupload() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let repo = "library/race";
    let config_bytes = unique("config");
    let layer_bytes = unique("layer");
    let config = blob(&app, repo, &config_bytes).await;
    let layer = blob(&app, repo, &layer_bytes).await;
    gc.age(3 * 3600).await;

    // A writer of another repository holds the layer's lock for a moment, so
    // the collector queues on it, and the push queues behind the collector.
    let mut writer = PgConnection::connect(&db_url(&app.db_name)).await.unwrap();
    let mut held = writer.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))")
        .bind(BLOB_LOCK_CLASS as i32)
        .bind(&layer.0)
        .execute(&mut *held)
        .await
        .unwrap();
    let collector = {
        let registry = gc.registry.clone();
        tokio::spawn(async move {
            registry
                .collect_garbage(&GcOptions::default(), &Watch::default())
                .await
        })
    };
    wait_for_waiters(&gc.pool, 1).await;
    let body = image(&config, std::slice::from_ref(&layer));
    let push = {
        let client = app.client.clone();
        let url = app.url(&format!("/v2/{repo}/manifests/v1"));
        let body = body.clone();
        tokio::spawn(async move {
            let resp = client
                .put(url)
                .header("Content-Type", OCI_MANIFEST)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        })
    };
    wait_for_waiters(&gc.pool, 2).await;
    held.rollback().await.unwrap();

    let report = collector.await.unwrap().unwrap();
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    let (status, text) = push.await.unwrap();
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("MANIFEST_BLOB_UNKNOWN"), "{text}");
    assert!(!gc.present(&layer.0).await && !gc.present(&config.0).await);
    gc.assert_consistent().await;

    // The client does what clients do: uploads the blobs again and retries.
    blob(&app, repo, &config_bytes).await;
    blob(&app, repo, &layer_bytes).await;
    put_ok(&app, repo, "v1", OCI_MANIFEST, &body).await;
    let pulled = pull_blob(&app, repo, &layer.0).await.unwrap();
    assert_eq!(pulled, layer_bytes);
    gc.assert_consistent().await;
}

#[tokio::test]
async fn an_upload_of_a_digest_being_deleted_waits_and_republishes_its_bytes() {
    let app = TestApp::spawn().await;
    let gc = Collector::for_app(&app, 7200).await;
    let repo = "library/reupload";
    let bytes = unique("layer deleted and uploaded again");
    let layer = blob(&app, repo, &bytes).await;
    gc.age(3 * 3600).await;
    // Only the blob step should meet the lock: unlink first.
    let report = gc.real().await;
    assert_eq!(report.blobs_deleted, 1);
    blob(&app, repo, &bytes).await;
    gc.age(3 * 3600).await;
    sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
        .bind(&layer.0)
        .execute(&gc.pool)
        .await
        .unwrap();

    let mut writer = PgConnection::connect(&db_url(&app.db_name)).await.unwrap();
    let mut held = writer.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))")
        .bind(BLOB_LOCK_CLASS as i32)
        .bind(&layer.0)
        .execute(&mut *held)
        .await
        .unwrap();
    let collector = {
        let registry = gc.registry.clone();
        tokio::spawn(async move {
            registry
                .collect_garbage(&GcOptions::default(), &Watch::default())
                .await
        })
    };
    wait_for_waiters(&gc.pool, 1).await;
    // The upload's bytes are received now; its publication queues behind
    // the collector's exclusive lock.
    let upload = {
        let client = app.client.clone();
        let url = app.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", layer.0));
        let bytes = bytes.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("Content-Type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    wait_for_waiters(&gc.pool, 2).await;
    held.rollback().await.unwrap();

    let report = collector.await.unwrap().unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(upload.await.unwrap(), 201);
    // Deleted, then published again: row and bytes, both.
    assert!(gc.present(&layer.0).await);
    assert_eq!(pull_blob(&app, repo, &layer.0).await.unwrap(), bytes);
    gc.assert_consistent().await;
}

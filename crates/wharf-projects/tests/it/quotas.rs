//! Quota accounting and tag immutability through the admission seam,
//! against a real PostgreSQL: each "push" below runs the registry's
//! sequence (one transaction: admission, then the manifest, its references
//! and tags) and each "delete" the registry's delete (admission, then the
//! row goes), so what is checked is exactly what the registry commits. The
//! gateway's e2e tests (`e2e_quota.rs`, `e2e_immutability.rs`) do the same
//! with real clients.

use std::sync::Arc;

use sqlx::PgPool;
use wharf_oci::{Digest, DigestAlgorithm, RepositoryName};
use wharf_projects::admission::ProjectAdmission;
use wharf_projects::immutability::{self, RuleInput, RuleSpec};
use wharf_projects::quotas::{self, Recalculated};
use wharf_projects::{NewProject, ProjectName, create_project, ensure_admin, get_user_by_name};
use wharf_registry::seams::{Admission, AdmissionError, Deletion, ManifestPush};

use crate::support::TestDb;

struct Registryish {
    db: TestDb,
    admission: Arc<ProjectAdmission>,
}

/// A blob: digest and size.
type Blob = (String, u64);

fn blob(size: u64) -> Blob {
    let bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    (
        Digest::of(DigestAlgorithm::Sha256, &bytes).to_string(),
        size,
    )
}

/// The bytes of an image manifest naming `layers`, unique per call.
fn manifest_bytes(layers: &[Blob]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(r#"{{"mediaType":"application/octet-stream","digest":"{d}","size":{s}}}"#)
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{}],"annotations":{{"n":"{}"}}}}"#,
        layers.join(","),
        uuid::Uuid::new_v4()
    )
    .into_bytes()
}

/// A manifest ready to push: its bytes and digest.
#[derive(Clone)]
struct Image {
    bytes: Vec<u8>,
    digest: Digest,
    layers: Vec<Blob>,
}

fn image(layers: &[Blob]) -> Image {
    let bytes = manifest_bytes(layers);
    Image {
        digest: Digest::of(DigestAlgorithm::Sha256, &bytes),
        bytes,
        layers: layers.to_vec(),
    }
}

impl Image {
    fn own_size(&self) -> i64 {
        self.bytes.len() as i64
    }
}

impl Registryish {
    async fn new() -> Registryish {
        let db = TestDb::new().await;
        ensure_admin(&db.pool, Some("Harbor12345")).await.unwrap();
        let admission = Arc::new(ProjectAdmission::new(db.pool.clone()));
        Registryish { db, admission }
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    async fn project(&self, name: &str, limit: i64) -> i64 {
        let admin = get_user_by_name(self.pool(), "admin").await.unwrap();
        let mut new = NewProject::new(ProjectName::parse(name).unwrap(), admin.id);
        new.storage_limit = limit;
        create_project(self.pool(), &new).await.unwrap().id
    }

    /// What the registry does for `PUT /v2/<repo>/manifests/<tag>` once the
    /// blobs are uploaded: one transaction, admission first.
    async fn push(&self, repo: &str, tags: &[&str], image: &Image) -> Result<(), AdmissionError> {
        self.push_together(None, repo, tags, image).await
    }

    /// [`Registryish::push`], waiting at `barrier` (when given) after its
    /// transaction began and before admission, so pushes meet there at once.
    async fn push_together(
        &self,
        barrier: Option<&tokio::sync::Barrier>,
        repo: &str,
        tags: &[&str],
        image: &Image,
    ) -> Result<(), AdmissionError> {
        let (name, repository_id) = self.prepare(repo, image).await?;
        let mut tx = self.pool().begin().await?;
        if let Some(barrier) = barrier {
            barrier.wait().await;
        }
        self.admit(&mut tx, &name, repository_id, tags, image)
            .await?;
        self.record(&mut tx, repository_id, tags, image).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What a push has done before its manifest comes: its blobs uploaded
    /// and committed, its repository created.
    async fn prepare(
        &self,
        repo: &str,
        image: &Image,
    ) -> Result<(RepositoryName, i64), AdmissionError> {
        let name = RepositoryName::parse(repo).unwrap();
        for (digest, size) in &image.layers {
            sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(digest)
                .bind(*size as i64)
                .execute(self.pool())
                .await?;
        }
        // Created beforehand, so pushes waiting at the barrier never wait
        // for each other's uncommitted repository row instead.
        let repository_id: i64 = sqlx::query_scalar(
            "INSERT INTO repositories (name, project) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET updated_at = now() RETURNING id",
        )
        .bind(repo)
        .bind(name.project())
        .fetch_one(self.pool())
        .await?;
        Ok((name, repository_id))
    }

    /// The manifest `PUT`'s admission, in its transaction.
    async fn admit(
        &self,
        tx: &mut sqlx::PgConnection,
        name: &RepositoryName,
        repository_id: i64,
        tags: &[&str],
        image: &Image,
    ) -> Result<(), AdmissionError> {
        self.admission
            .admit_manifest(
                tx,
                &ManifestPush {
                    repository: name,
                    repository_id,
                    digest: &image.digest,
                    tags,
                    media_type: "application/vnd.oci.image.manifest.v1+json",
                    size: image.bytes.len() as u64,
                    blobs: &image.layers,
                    children: &[],
                    subject: None,
                },
            )
            .await
    }

    /// What the manifest `PUT` writes once admitted: the manifest, its
    /// references and its tags.
    async fn record(
        &self,
        tx: &mut sqlx::PgConnection,
        repository_id: i64,
        tags: &[&str],
        image: &Image,
    ) -> Result<(), AdmissionError> {
        let digest = image.digest.to_string();
        sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(&digest)
            .bind(image.own_size())
            .execute(&mut *tx)
            .await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO manifests (repository_id, digest, media_type, size, content)
             VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', $3, $4)
             ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id",
        )
        .bind(repository_id)
        .bind(&digest)
        .bind(image.own_size())
        .bind(&image.bytes)
        .fetch_optional(&mut *tx)
        .await?;
        let manifest_id = match inserted {
            Some(id) => {
                for (layer, _) in &image.layers {
                    sqlx::query(
                        "INSERT INTO manifest_references (manifest_id, digest, kind)
                         VALUES ($1, $2, 'blob') ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(layer)
                    .execute(&mut *tx)
                    .await?;
                }
                id
            }
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2",
                )
                .bind(repository_id)
                .bind(&digest)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        for tag in tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, $2, $3)
                 ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = EXCLUDED.manifest_id",
            )
            .bind(repository_id)
            .bind(tag)
            .bind(manifest_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// What the registry does for `DELETE /v2/<repo>/manifests/<reference>`:
    /// admission, then the manifest (with its tags) or the tag goes.
    async fn delete(
        &self,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<(), AdmissionError> {
        let name = RepositoryName::parse(repo).unwrap();
        let mut tx = self.pool().begin().await?;
        let repository_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_one(&mut *tx)
            .await?;
        self.admission
            .admit_delete(
                &mut tx,
                &Deletion {
                    repository: &name,
                    repository_id,
                    tag,
                    digest,
                },
            )
            .await?;
        match (tag, digest) {
            (Some(tag), _) => {
                sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
                    .bind(repository_id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
            (None, Some(digest)) => {
                sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
                    .bind(repository_id)
                    .bind(digest.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            (None, None) => unreachable!("a deletion names a tag or a digest"),
        }
        tx.commit().await?;
        Ok(())
    }

    async fn used(&self, project_id: i64) -> i64 {
        quotas::quota_of_project(self.pool(), project_id)
            .await
            .unwrap()
            .used
    }

    async fn charged(&self, project_id: i64) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM project_blobs WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Usage is what the manifests add up to: recalculation changes nothing.
    async fn assert_exact(&self, project_id: i64) -> i64 {
        let used = self.used(project_id).await;
        let again = quotas::recalculate(self.pool(), project_id).await.unwrap();
        assert_eq!(
            again,
            Recalculated {
                project_id,
                before: used,
                after: used
            },
            "usage must equal the recalculated value"
        );
        used
    }
}

fn denied_message(result: Result<(), AdmissionError>) -> String {
    match result {
        Err(AdmissionError::Denied { message }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn shared_layers_count_once_per_project_and_again_in_each_project() {
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let ops = reg.project("ops", -1).await;
    let (l1, l2, l3, l4) = (blob(1000), blob(2000), blob(3000), blob(4000));
    let a = image(&[l1.clone(), l2.clone(), l3.clone()]);
    let b = image(&[l1.clone(), l2.clone(), l4.clone()]);

    reg.push("team/app", &["a"], &a).await.unwrap();
    assert_eq!(reg.used(team).await, a.own_size() + 6000);
    reg.push("team/app", &["b"], &b).await.unwrap();
    let both = a.own_size() + b.own_size() + 10_000;
    assert_eq!(reg.used(team).await, both, "l1 and l2 are counted once");
    // The same image in another repository of the project, and again under
    // a new tag: nothing new.
    reg.push("team/other", &["a"], &a).await.unwrap();
    reg.push("team/app", &["a2"], &a).await.unwrap();
    assert_eq!(reg.used(team).await, both);
    assert_eq!(reg.charged(team).await, 6, "two manifests and four layers");
    reg.assert_exact(team).await;

    // Another project holding the same blobs pays for them itself.
    reg.push("ops/app", &["a"], &a).await.unwrap();
    assert_eq!(reg.used(ops).await, a.own_size() + 6000);
    assert_eq!(reg.used(team).await, both);
    reg.assert_exact(ops).await;
}

#[tokio::test]
async fn a_push_over_the_limit_is_refused_with_the_numbers_and_changes_nothing() {
    let reg = Registryish::new().await;
    let mib = 1024 * 1024;
    let team = reg.project("team", 10 * mib).await;
    let base = image(&[blob(9 * mib as u64)]);
    reg.push("team/app", &["v1"], &base).await.unwrap();
    let used = reg.used(team).await;
    let charged = reg.charged(team).await;

    let big = image(&[blob(2 * mib as u64), base.layers[0].clone()]);
    let message = denied_message(reg.push("team/app", &["v2"], &big).await);
    let adding = 2 * mib + big.own_size();
    assert!(
        message.starts_with(&format!(
            "quota exceeded in project team: limit 10.0 MiB (10485760 B), in use {} ({used} B), \
             this push adds {} ({adding} B)",
            quotas::human_size(used),
            quotas::human_size(adding),
        )),
        "{message}"
    );
    assert_eq!(reg.used(team).await, used, "usage unchanged");
    assert_eq!(reg.charged(team).await, charged, "nothing charged");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM manifests WHERE digest = $1")
        .bind(big.digest.to_string())
        .fetch_one(reg.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "the refused manifest was rolled back");

    // Tagging what is already stored adds nothing and is admitted even at
    // the limit; a push that fits is admitted.
    reg.push("team/app", &["again"], &base).await.unwrap();
    let small = image(&[blob(100)]);
    reg.push("team/app", &["small"], &small).await.unwrap();
    assert_eq!(
        reg.used(team).await,
        used + 100 + small.own_size(),
        "a push that fits is charged"
    );

    // Uploads start while there is room, not once the project is full.
    let name = RepositoryName::parse("team/app").unwrap();
    reg.admission.admit_blob_upload(&name).await.unwrap();
    let mut tx = reg.pool().begin().await.unwrap();
    quotas::set_hard_limit(&mut tx, team, reg.used(team).await)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let message = denied_message(reg.admission.admit_blob_upload(&name).await);
    assert!(
        message.starts_with("quota exceeded in project team: limit "),
        "{message}"
    );
    assert!(message.contains("nothing more can be pushed"), "{message}");
    // Other projects are not affected.
    reg.project("other", 1).await;
    reg.admission
        .admit_blob_upload(&RepositoryName::parse("other/app").unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_an_artifact_releases_exactly_what_nothing_else_references() {
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let (l1, l2, l3, l4) = (blob(1000), blob(2000), blob(3000), blob(4000));
    let a = image(&[l1.clone(), l2.clone(), l3.clone()]);
    let b = image(&[l1.clone(), l2.clone(), l4.clone()]);
    reg.push("team/app", &["a"], &a).await.unwrap();
    reg.push("team/app", &["b"], &b).await.unwrap();
    reg.push("team/copy", &["b"], &b).await.unwrap();

    // Deleting a tag releases nothing: the manifest stays.
    reg.delete("team/app", Some("a"), None).await.unwrap();
    assert_eq!(
        reg.assert_exact(team).await,
        a.own_size() + b.own_size() + 10_000
    );
    // `a` goes: its own bytes and l3, which only it referenced.
    reg.delete("team/app", None, Some(&a.digest)).await.unwrap();
    assert_eq!(reg.used(team).await, b.own_size() + 7000);
    reg.assert_exact(team).await;
    // `b` is still in team/copy: nothing is released.
    reg.delete("team/app", None, Some(&b.digest)).await.unwrap();
    assert_eq!(reg.used(team).await, b.own_size() + 7000);
    // The last reference goes: usage is zero.
    reg.delete("team/copy", None, Some(&b.digest))
        .await
        .unwrap();
    assert_eq!(reg.used(team).await, 0);
    assert_eq!(reg.charged(team).await, 0);
    reg.assert_exact(team).await;
}

#[tokio::test]
async fn concurrent_pushes_and_deletes_keep_usage_exact() {
    let reg = Arc::new(Registryish::new().await);
    let team = reg.project("team", -1).await;
    let shared: Vec<Blob> = (0..3).map(|i| blob(1000 * (i + 1))).collect();
    let images: Vec<Image> = (0..24)
        .map(|i| {
            let mut layers = shared.clone();
            layers.push(blob(10 + i));
            image(&layers)
        })
        .collect();
    // As many pushes as the pool has connections meet at the barrier, all
    // inside their transactions, and reach admission at the same moment.
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let mut tasks = Vec::new();
    for (i, img) in images.iter().cloned().enumerate() {
        let (reg, barrier) = (reg.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let repo = format!("team/app{}", i % 4);
            reg.push_together(Some(&barrier), &repo, &[&format!("v{i}")], &img)
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let expected: i64 = images
        .iter()
        .map(|i| i.own_size() + i.layers[3].1 as i64)
        .sum::<i64>()
        + 6000;
    assert_eq!(reg.assert_exact(team).await, expected);

    // Half of them deleted concurrently with new pushes.
    let mut tasks = Vec::new();
    for (i, img) in images
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
    {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            let repo = format!("team/app{}", i % 4);
            reg.delete(&repo, None, Some(&img.digest)).await
        }));
    }
    for i in 0..8u64 {
        let reg = reg.clone();
        let img = image(&[shared[0].clone(), blob(500 + i)]);
        tasks.push(tokio::spawn(async move {
            reg.push("team/late", &[&format!("late{i}")], &img).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    reg.assert_exact(team).await;
}

/// Wait until `task` is blocked on the quota row lock (`quotas::lock`) of
/// this database; fail if it finishes, or waits elsewhere, instead.
async fn wait_for_quota_lock<T>(pool: &PgPool, task: &tokio::task::JoinHandle<T>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: Vec<String> = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        if waiting.iter().any(|q| q.contains("FOR UPDATE OF q")) {
            return;
        }
        assert!(
            !task.is_finished(),
            "the second writer went through while the first held the project's quota lock"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the second writer is not waiting for the quota lock; waiting: {waiting:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The interleaving behind `duplicate key value violates unique constraint
/// "project_blobs_pkey"`: two pushes charging the same new layer at once.
/// In READ COMMITTED a statement sees only what committed before it began,
/// so the second may look for charged blobs only after the first committed:
/// it must wait at the quota row lock and then find the layer charged.
#[tokio::test]
async fn a_push_sharing_a_new_layer_waits_for_the_first_and_sees_its_charge() {
    let reg = Arc::new(Registryish::new().await);
    let team = reg.project("team", -1).await;
    let layer = blob(4000);
    let first = image(&[layer.clone(), blob(10)]);
    let second = image(&[layer.clone(), blob(20)]);
    let (name, repository_id) = reg.prepare("team/app", &first).await.unwrap();
    reg.prepare("team/app", &second).await.unwrap();

    let mut tx = reg.pool().begin().await.unwrap();
    reg.admit(&mut tx, &name, repository_id, &["a"], &first)
        .await
        .unwrap();
    let pushing = {
        let (reg, name, second) = (reg.clone(), name.clone(), second.clone());
        tokio::spawn(async move {
            let mut tx = reg.pool().begin().await?;
            reg.admit(&mut tx, &name, repository_id, &["b"], &second)
                .await?;
            reg.record(&mut tx, repository_id, &["b"], &second).await?;
            tx.commit().await?;
            Ok::<_, AdmissionError>(())
        })
    };
    wait_for_quota_lock(reg.pool(), &pushing).await;
    reg.record(&mut tx, repository_id, &["a"], &first)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pushing.await.unwrap().unwrap();
    assert_eq!(
        reg.assert_exact(team).await,
        first.own_size() + second.own_size() + 4000 + 10 + 20,
        "the shared layer is charged once"
    );
}

/// A delete that releases a layer and a push that needs it again, in both
/// orders: whichever holds the quota lock first, the other sees its outcome.
#[tokio::test]
async fn a_delete_and_a_push_of_a_shared_layer_take_turns() {
    let reg = Arc::new(Registryish::new().await);
    let team = reg.project("team", -1).await;
    let layer = blob(4000);
    let old = image(&[layer.clone(), blob(10)]);
    reg.push("team/app", &["old"], &old).await.unwrap();

    // The delete first: it releases the layer; the push charges it again.
    let new = image(&[layer.clone(), blob(20)]);
    let (name, repository_id) = reg.prepare("team/app", &new).await.unwrap();
    let mut tx = reg.pool().begin().await.unwrap();
    reg.admission
        .admit_delete(
            &mut tx,
            &Deletion {
                repository: &name,
                repository_id,
                tag: None,
                digest: Some(&old.digest),
            },
        )
        .await
        .unwrap();
    let pushing = {
        let (reg, name, new) = (reg.clone(), name.clone(), new.clone());
        tokio::spawn(async move {
            let mut tx = reg.pool().begin().await?;
            reg.admit(&mut tx, &name, repository_id, &["new"], &new)
                .await?;
            reg.record(&mut tx, repository_id, &["new"], &new).await?;
            tx.commit().await?;
            Ok::<_, AdmissionError>(())
        })
    };
    wait_for_quota_lock(reg.pool(), &pushing).await;
    sqlx::query("DELETE FROM manifests WHERE id = (SELECT id FROM manifests WHERE digest = $1)")
        .bind(old.digest.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pushing.await.unwrap().unwrap();
    assert_eq!(reg.assert_exact(team).await, new.own_size() + 4000 + 20);

    // The push first: the delete that follows must keep the layer.
    let newer = image(&[layer.clone(), blob(30)]);
    reg.prepare("team/app", &newer).await.unwrap();
    let mut tx = reg.pool().begin().await.unwrap();
    reg.admit(&mut tx, &name, repository_id, &["newer"], &newer)
        .await
        .unwrap();
    let deleting = {
        let (reg, digest) = (reg.clone(), new.digest.clone());
        tokio::spawn(async move { reg.delete("team/app", None, Some(&digest)).await })
    };
    wait_for_quota_lock(reg.pool(), &deleting).await;
    reg.record(&mut tx, repository_id, &["newer"], &newer)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    deleting.await.unwrap().unwrap();
    assert_eq!(reg.assert_exact(team).await, newer.own_size() + 4000 + 30);
}

/// Admission that lets a `DELETE` of `victim` run to its commit before it
/// admits the first manifest write: the moment a delete by digest (which
/// takes admission's lock but no blob lock) can slip in before a tag
/// creation's admission.
struct DeleteFirst {
    inner: ProjectAdmission,
    deleter: wharf_registry::Registry,
    victim: (RepositoryName, Digest),
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Admission for DeleteFirst {
    async fn admit_blob_upload(&self, repository: &RepositoryName) -> Result<(), AdmissionError> {
        self.inner.admit_blob_upload(repository).await
    }

    async fn admit_manifest(
        &self,
        tx: &mut sqlx::PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let (repository, digest) = &self.victim;
            self.deleter
                .delete(
                    repository,
                    &wharf_oci::Reference::Digest(digest.clone()),
                    wharf_registry::seams::Principal {
                        name: Some("admin".into()),
                        client_addr: None,
                    },
                )
                .await
                .expect("the delete goes through first");
        }
        self.inner.admit_manifest(tx, push).await
    }

    async fn admit_delete(
        &self,
        tx: &mut sqlx::PgConnection,
        deletion: &Deletion<'_>,
    ) -> Result<(), AdmissionError> {
        self.inner.admit_delete(tx, deletion).await
    }
}

/// A tag created on an artifact that a `DELETE` took meanwhile is
/// `MANIFEST_UNKNOWN` (it was a 500: the tag's foreign key), and the
/// project's usage is what the delete left.
#[tokio::test]
async fn tagging_an_artifact_deleted_meanwhile_is_manifest_unknown() {
    use wharf_registry::{Registry, RegistryConfig, RegistryError};
    use wharf_store::{BlobStore, StorageConfig};

    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let config = blob(300);
    let layer = blob(4000);
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        config.0, config.1, layer.0, layer.1
    )
    .into_bytes();
    let victim = Image {
        digest: Digest::of(DigestAlgorithm::Sha256, &bytes),
        bytes,
        layers: vec![config, layer],
    };
    reg.push("team/app", &["v1"], &victim).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_config(&StorageConfig::Filesystem {
        root: dir.path().to_owned(),
    })
    .await
    .unwrap();
    let plain = Registry::new(reg.pool().clone(), store, RegistryConfig::default());
    let name = RepositoryName::parse("team/app").unwrap();
    let registry = plain.clone().with_admission(Arc::new(DeleteFirst {
        inner: ProjectAdmission::new(reg.pool().clone()),
        deleter: plain.with_admission(reg.admission.clone()),
        victim: (name.clone(), victim.digest.clone()),
        done: Default::default(),
    }));
    let tagged = registry
        .tag(
            &name,
            &victim.digest,
            &wharf_oci::Tag::parse("v2").unwrap(),
            wharf_registry::seams::Principal {
                name: Some("admin".into()),
                client_addr: None,
            },
        )
        .await;
    match tagged {
        Err(RegistryError::Distribution(e)) => {
            assert_eq!(e.code, wharf_oci::ErrorCode::ManifestUnknown, "{e:?}")
        }
        other => panic!("expected MANIFEST_UNKNOWN, got {other:?}"),
    }
    assert_eq!(
        reg.assert_exact(team).await,
        0,
        "the delete released everything"
    );
}

#[tokio::test]
async fn recalculation_repairs_corrupted_usage() {
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let ops = reg.project("ops", -1).await;
    let a = image(&[blob(1000), blob(2000)]);
    reg.push("team/app", &["a"], &a).await.unwrap();
    reg.push("ops/app", &["a"], &a).await.unwrap();
    let right = a.own_size() + 3000;

    sqlx::query("UPDATE project_quotas SET used = 12345 WHERE project_id = $1")
        .bind(team)
        .execute(reg.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM project_blobs WHERE project_id = $1")
        .bind(ops)
        .execute(reg.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE project_quotas SET used = 0 WHERE project_id = $1")
        .bind(ops)
        .execute(reg.pool())
        .await
        .unwrap();

    assert_eq!(
        quotas::recalculate(reg.pool(), team).await.unwrap(),
        Recalculated {
            project_id: team,
            before: 12345,
            after: right
        }
    );
    let all = quotas::recalculate_all(reg.pool()).await.unwrap();
    assert!(all.contains(&Recalculated {
        project_id: ops,
        before: 0,
        after: right
    }));
    assert_eq!(reg.used(ops).await, right);
    // The rebuilt charges are what deletes release from.
    reg.delete("ops/app", None, Some(&a.digest)).await.unwrap();
    assert_eq!(reg.used(ops).await, 0);
    assert!(matches!(
        quotas::recalculate(reg.pool(), 999_999).await,
        Err(wharf_projects::Error::NotFound)
    ));
}

async fn rule(pool: &PgPool, project_id: i64, repo: (&str, &str), tag: (&str, &str)) -> i64 {
    let spec = RuleSpec::parse(&RuleInput {
        action: Some("immutable"),
        template: Some("immutable_template"),
        tag_selectors: vec![("doublestar", tag.0, tag.1)],
        scope_selectors: vec![("repository", vec![("doublestar", repo.0, repo.1)])],
        ..RuleInput::default()
    })
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    immutability::create_rule(&mut conn, project_id, &spec)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn immutable_tags_cannot_move_nor_be_deleted_nor_their_artifacts() {
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let id = rule(reg.pool(), team, ("repoMatches", "app"), ("matches", "v*")).await;
    let v1 = image(&[blob(10)]);
    let other = image(&[blob(20)]);

    // The first push of an immutable tag is allowed, and so is pushing the
    // same digest again.
    reg.push("team/app", &["v1", "latest"], &v1).await.unwrap();
    reg.push("team/app", &["v1"], &v1).await.unwrap();
    let used = reg.used(team).await;

    let message = denied_message(reg.push("team/app", &["v1"], &other).await);
    assert_eq!(
        message,
        format!(
            "the tag team/app:v1 is immutable and points at {}: it cannot be moved to {}; \
             push under a new tag (rule {id} (repositories matching app, tags matching v*) of project team)",
            v1.digest, other.digest
        )
    );
    assert_eq!(
        reg.used(team).await,
        used,
        "the refused push charged nothing"
    );
    // Tags the rule does not select move freely; so do tags in other repositories.
    reg.push("team/app", &["latest"], &other).await.unwrap();
    reg.push("team/web", &["v1"], &v1).await.unwrap();
    reg.push("team/web", &["v1"], &other).await.unwrap();

    let message = denied_message(reg.delete("team/app", Some("v1"), None).await);
    assert!(
        message.starts_with("the tag team/app:v1 is immutable and cannot be deleted (rule "),
        "{message}"
    );
    let message = denied_message(reg.delete("team/app", None, Some(&v1.digest)).await);
    assert!(
        message.starts_with(&format!(
            "the artifact team/app@{} carries the immutable tag v1 and cannot be deleted",
            v1.digest
        )),
        "{message}"
    );
    assert_eq!(reg.used(team).await, reg.assert_exact(team).await);

    // A disabled rule protects nothing.
    let mut spec = immutability::get_rule(reg.pool(), team, id)
        .await
        .unwrap()
        .spec;
    spec.disabled = true;
    immutability::update_rule(reg.pool(), team, id, &spec)
        .await
        .unwrap();
    reg.push("team/app", &["v1"], &other).await.unwrap();
    reg.delete("team/app", Some("v1"), None).await.unwrap();
    reg.delete("team/app", None, Some(&v1.digest))
        .await
        .unwrap();
    reg.assert_exact(team).await;
}

#[tokio::test]
async fn excluding_rules_protect_every_other_tag() {
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    rule(
        reg.pool(),
        team,
        ("repoMatches", "**"),
        ("excludes", "{latest,dev-*}"),
    )
    .await;
    let one = image(&[blob(1)]);
    let two = image(&[blob(2)]);
    reg.push("team/deep/app", &["1.0", "latest", "dev-x"], &one)
        .await
        .unwrap();
    reg.push("team/deep/app", &["latest", "dev-x"], &two)
        .await
        .unwrap();
    let message = denied_message(reg.push("team/deep/app", &["1.0"], &two).await);
    assert!(
        message.contains("team/deep/app:1.0 is immutable"),
        "{message}"
    );
    // Deleting a tag that does not exist is not an immutability question.
    reg.delete("team/deep/app", Some("2.0"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_repair_job_recalculates_through_the_queue() {
    use std::time::{Duration, Instant};
    let reg = Registryish::new().await;
    let team = reg.project("team", -1).await;
    let ops = reg.project("ops", -1).await;
    let a = image(&[blob(1000), blob(2000)]);
    reg.push("team/app", &["a"], &a).await.unwrap();
    reg.push("ops/app", &["a"], &a).await.unwrap();
    let right = a.own_size() + 3000;
    let corrupt = |id: i64, used: i64| {
        sqlx::query("UPDATE project_quotas SET used = $2 WHERE project_id = $1")
            .bind(id)
            .bind(used)
            .execute(reg.pool())
    };
    corrupt(team, 7).await.unwrap();
    corrupt(ops, 9).await.unwrap();

    let mut jobs = wharf_jobs::Jobs::start(reg.pool().clone()).await.unwrap();
    wharf_projects::jobs::register_jobs(&mut jobs);
    assert!(jobs.kinds().contains(&quotas::RECALCULATE_JOB));
    let _worker = jobs.run_worker(1, std::future::pending());

    // One project, reporting to an execution.
    let mut tx = reg.pool().begin().await.unwrap();
    let payload = serde_json::json!({ "project_id": team });
    let execution = wharf_jobs::create_execution(
        &mut *tx,
        quotas::RECALCULATE_JOB,
        wharf_jobs::Trigger::Manual,
        payload.clone(),
        Some(team),
    )
    .await
    .unwrap();
    wharf_jobs::enqueue(
        &mut tx,
        quotas::RECALCULATE_JOB,
        wharf_jobs::with_execution(payload, execution),
        Default::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reg.used(team).await != right {
        assert!(Instant::now() < deadline, "the repair job did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reg.used(ops).await, 9, "only the named project");
    let log = loop {
        let done = wharf_jobs::get_execution(reg.pool(), execution)
            .await
            .unwrap()
            .unwrap();
        if done.status.is_final() {
            assert_eq!(done.status, wharf_jobs::ExecutionStatus::Success);
            break wharf_jobs::get_log(reg.pool(), execution)
                .await
                .unwrap()
                .unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "the execution did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        log.contains(&format!(
            "project {team}: usage was 7 B, recalculated {right} B"
        )),
        "{log}"
    );

    // Every project, queued with the helper.
    let mut conn = reg.pool().acquire().await.unwrap();
    quotas::enqueue_recalculation(&mut conn, None)
        .await
        .unwrap();
    while reg.used(ops).await != right {
        assert!(
            Instant::now() < deadline,
            "the repair of every project did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

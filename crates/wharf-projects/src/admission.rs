//! The registry's admission seam for projects: storage quotas
//! ([`crate::quotas`]), tag immutability ([`crate::immutability`]) and the
//! read-only repositories of proxy-cache projects, checked inside the
//! transaction of the push or delete.
//!
//! A proxy-cache project (one with a `registry_id`) refuses every push,
//! blob upload and mount, tag and copy into it: its content is what the
//! upstream serves. The cache itself stores what it fetches through
//! `admit_cached_manifest`, which charges the quota like a push and skips
//! immutability (the upstream decides where its tags point).
//!
//! Every check starts by locking the project's quota row, so pushes and
//! deletes in one project take turns from there to their commit. That one
//! lock keeps usage exact and also closes the race where two pushes create
//! the same immutable tag with different digests at once: the second sees
//! the first's tag.
//!
//! ```ignore
//! let registry = registry.with_admission(Arc::new(ProjectAdmission::new(pool.clone())));
//! ```

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use wharf_registry::seams::{Admission, AdmissionError, Deletion, ManifestPush};

use crate::error::Error;
use crate::immutability::{self, RuleSet};
use crate::quotas;

/// Quotas and immutable tags on every push and delete of the registry.
#[derive(Debug, Clone)]
pub struct ProjectAdmission {
    pool: PgPool,
}

impl ProjectAdmission {
    /// Admission over the projects in `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        ProjectAdmission { pool }
    }
}

fn denied(message: String) -> AdmissionError {
    AdmissionError::Denied { message }
}

fn from_domain(e: Error) -> AdmissionError {
    match e {
        Error::Database(e) => AdmissionError::Database(e),
        // A stored rule that no longer compiles: refuse rather than let a
        // write through that a rule might forbid.
        other => denied(format!("cannot check immutable tag rules: {other}")),
    }
}

async fn rules(conn: &mut PgConnection, project_id: i64) -> Result<RuleSet, AdmissionError> {
    immutability::enabled_rules(&mut *conn, project_id)
        .await
        .map_err(from_domain)
}

/// The digest each of `tags` points at in the repository now.
async fn current_digests(
    conn: &mut PgConnection,
    repository_id: i64,
    tags: &[&str],
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
          WHERE t.repository_id = $1 AND t.name = ANY($2)",
    )
    .bind(repository_id)
    .bind(tags)
    .fetch_all(conn)
    .await
}

/// The name of the endpoint `project` mirrors, if it is a proxy-cache project.
async fn proxied_from(
    conn: impl sqlx::PgExecutor<'_>,
    project: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT r.name FROM projects p JOIN replication_registries r ON r.id = p.registry_id
          WHERE p.name = $1 AND NOT p.deleted",
    )
    .bind(project)
    .fetch_optional(conn)
    .await
}

fn push_refused(project: &str, registry: &str) -> AdmissionError {
    denied(format!(
        "can not push artifact to a proxy project: {project} is a pull-through cache of the \
         registry {registry}; push to the upstream, or to a project that is not a proxy cache"
    ))
}

impl ProjectAdmission {
    /// Quota and, for pushes, immutability of one manifest write.
    async fn admit_write(
        &self,
        tx: &mut PgConnection,
        push: &ManifestPush<'_>,
        check_immutability: bool,
    ) -> Result<(), AdmissionError> {
        let Some(quota) = quotas::lock(&mut *tx, push.repository.project()).await? else {
            return Ok(());
        };
        let digest = push.digest.to_string();
        if check_immutability && !push.tags.is_empty() {
            let rules = rules(&mut *tx, quota.project_id).await?;
            if !rules.is_empty() {
                let repository = push.repository.as_str();
                for (tag, current) in
                    current_digests(&mut *tx, push.repository_id, push.tags).await?
                {
                    if current == digest {
                        continue;
                    }
                    if let Some(rule) = rules.protecting(repository, &tag) {
                        return Err(denied(format!(
                            "the tag {repository}:{tag} is immutable and points at {current}: it \
                             cannot be moved to {digest}; push under a new tag ({} of project {})",
                            rule.describe(),
                            quota.project_name
                        )));
                    }
                }
            }
        }
        let mut blobs = Vec::with_capacity(push.blobs.len() + 1);
        blobs.push((digest, push.size));
        blobs.extend(push.blobs.iter().cloned());
        match quotas::charge(&mut *tx, &quota, &blobs).await? {
            Ok(adding) => {
                let after = quota.used.saturating_add(adding);
                if crate::webhooks::outbox::crosses_warning(quota.limit, quota.used, after) {
                    crate::webhooks::outbox::record_quota_warning(
                        &mut *tx,
                        quota.project_id,
                        push.repository.as_str(),
                        &push.digest.to_string(),
                        push.tags.first().copied(),
                        quotas::warning_message(&quota, after),
                    )
                    .await?;
                }
                Ok(())
            }
            Err(exceeded) => {
                // The refused push rolls back: the notification goes on a
                // connection of its own, off the refusal's path.
                let pool = self.pool.clone();
                let (project_id, message) = (quota.project_id, exceeded.to_string());
                let repository = push.repository.as_str().to_owned();
                let digest = push.digest.to_string();
                let tag = push.tags.first().map(|t| (*t).to_owned());
                tokio::spawn(async move {
                    crate::webhooks::outbox::record_quota_exceeded(
                        &pool,
                        project_id,
                        &repository,
                        &digest,
                        tag.as_deref(),
                        message,
                    )
                    .await;
                });
                Err(denied(exceeded.to_string()))
            }
        }
    }
}

#[async_trait]
impl Admission for ProjectAdmission {
    async fn admit_blob_upload(
        &self,
        repository: &wharf_oci::RepositoryName,
    ) -> Result<(), AdmissionError> {
        if let Some(registry) = proxied_from(&self.pool, repository.project()).await? {
            return Err(push_refused(repository.project(), &registry));
        }
        match quotas::upload_allowed(&self.pool, repository.project()).await? {
            Ok(()) => Ok(()),
            Err(full) => Err(denied(full.to_string())),
        }
    }

    async fn admit_manifest(
        &self,
        tx: &mut PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        if let Some(registry) = proxied_from(&mut *tx, push.repository.project()).await? {
            return Err(push_refused(push.repository.project(), &registry));
        }
        self.admit_write(tx, push, true).await
    }

    async fn admit_cached_manifest(
        &self,
        tx: &mut PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        self.admit_write(tx, push, false).await
    }

    async fn admit_delete(
        &self,
        tx: &mut PgConnection,
        deletion: &Deletion<'_>,
    ) -> Result<(), AdmissionError> {
        let Some(quota) = quotas::lock(&mut *tx, deletion.repository.project()).await? else {
            return Ok(());
        };
        let repository = deletion.repository.as_str();
        let rules = rules(&mut *tx, quota.project_id).await?;
        if let Some(tag) = deletion.tag {
            let exists = !current_digests(&mut *tx, deletion.repository_id, &[tag])
                .await?
                .is_empty();
            if exists && let Some(rule) = rules.protecting(repository, tag) {
                return Err(denied(format!(
                    "the tag {repository}:{tag} is immutable and cannot be deleted ({} of project {})",
                    rule.describe(),
                    quota.project_name
                )));
            }
        }
        let Some(digest) = deletion.digest else {
            return Ok(());
        };
        let manifest: Option<(i64, Vec<String>)> = sqlx::query_as(
            "SELECT m.id, COALESCE(array_agg(t.name ORDER BY t.name)
                                   FILTER (WHERE t.name IS NOT NULL), '{}')
               FROM manifests m LEFT JOIN tags t ON t.manifest_id = m.id
              WHERE m.repository_id = $1 AND m.digest = $2
              GROUP BY m.id",
        )
        .bind(deletion.repository_id)
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((manifest_id, tags)) = manifest else {
            return Ok(());
        };
        if let Some((tag, rule)) = tags
            .iter()
            .find_map(|t| rules.protecting(repository, t).map(|r| (t, r)))
        {
            return Err(denied(format!(
                "the artifact {repository}@{digest} carries the immutable tag {tag} and cannot be \
                 deleted ({} of project {})",
                rule.describe(),
                quota.project_name
            )));
        }
        quotas::release_manifests(&mut *tx, &quota, &[manifest_id]).await?;
        Ok(())
    }
}

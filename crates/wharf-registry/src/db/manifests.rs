//! Manifests with their parsed facts and exact bytes, and what they reference.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};
use wharf_oci::{Digest, ParsedManifest, RepositoryName};

/// A stored manifest as a pull needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
    /// When a tag cached from a proxy project's upstream was last compared
    /// with it; `None` for local tags and lookups by digest.
    pub upstream_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn find_by_tag(
    pool: &PgPool,
    repository: &RepositoryName,
    tag: &str,
) -> sqlx::Result<Option<StoredManifest>> {
    sqlx::query_as(
        "SELECT m.digest, m.media_type, m.content, t.upstream_checked_at
           FROM repositories r
           JOIN tags t ON t.repository_id = r.id
           JOIN manifests m ON m.id = t.manifest_id
          WHERE r.name = $1 AND t.name = $2",
    )
    .bind(repository.as_str())
    .bind(tag)
    .fetch_optional(pool)
    .await
}

pub async fn find_by_digest(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> sqlx::Result<Option<StoredManifest>> {
    sqlx::query_as(
        "SELECT m.digest, m.media_type, m.content, NULL::timestamptz AS upstream_checked_at
           FROM repositories r
           JOIN manifests m ON m.repository_id = r.id
          WHERE r.name = $1 AND m.digest = $2",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await
}

/// Which of `digests` are manifests in repository `repository_id`.
pub async fn existing(
    conn: &mut PgConnection,
    repository_id: i64,
    digests: &[String],
) -> sqlx::Result<HashSet<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT digest FROM manifests WHERE repository_id = $1 AND digest = ANY($2)",
    )
    .bind(repository_id)
    .bind(digests)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(d,)| d).collect())
}

/// Insert a manifest and its references; pushing the same bytes again is a
/// no-op that returns the existing id.
pub async fn insert(
    conn: &mut PgConnection,
    repository_id: i64,
    digest: &Digest,
    manifest: &ParsedManifest,
    content: &[u8],
) -> sqlx::Result<i64> {
    let digest = digest.to_string();
    let annotations = if manifest.annotations.is_empty() {
        None
    } else {
        Some(
            serde_json::to_value(&manifest.annotations)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
        )
    };
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size,
                                subject_digest, config_digest, annotations, content)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (repository_id, digest) DO NOTHING
         RETURNING id",
    )
    .bind(repository_id)
    .bind(&digest)
    .bind(&manifest.media_type)
    .bind(manifest.referrer_artifact_type())
    .bind(content.len() as i64)
    .bind(manifest.subject.as_ref().map(|s| s.digest.to_string()))
    .bind(manifest.config.as_ref().map(|c| c.digest.to_string()))
    .bind(annotations)
    .bind(content)
    .fetch_optional(&mut *conn)
    .await?;
    let id = match inserted {
        Some((id,)) => id,
        None => {
            let (id,): (i64,) =
                sqlx::query_as("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
                    .bind(repository_id)
                    .bind(&digest)
                    .fetch_one(&mut *conn)
                    .await?;
            return Ok(id);
        }
    };
    let mut digests = Vec::new();
    let mut kinds = Vec::new();
    for d in manifest.config.iter().chain(manifest.layers.iter()) {
        digests.push(d.digest.to_string());
        kinds.push("blob");
    }
    for d in &manifest.manifests {
        digests.push(d.digest.to_string());
        kinds.push("manifest");
    }
    if !digests.is_empty() {
        sqlx::query(
            "INSERT INTO manifest_references (manifest_id, digest, kind)
             SELECT $1, d, k FROM UNNEST($2::text[], $3::text[]) AS x(d, k)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&digests)
        .bind(&kinds)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

/// Delete a manifest (and, by cascade, every tag pointing at it), and the
/// repository's link to its bytes, so it is no longer served as a blob either.
pub async fn delete(
    conn: &mut PgConnection,
    repository: &RepositoryName,
    digest: &Digest,
) -> sqlx::Result<bool> {
    let gone: Option<(i32,)> = sqlx::query_as(
        "WITH gone AS (
            DELETE FROM manifests m USING repositories r
             WHERE r.id = m.repository_id AND r.name = $1 AND m.digest = $2
            RETURNING m.repository_id, m.digest
         ), unlinked AS (
            DELETE FROM repository_blobs rb USING gone g
             WHERE rb.repository_id = g.repository_id AND rb.digest = g.digest
         )
         SELECT 1 FROM gone",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(gone.is_some())
}

/// A manifest whose `subject` is the requested digest.
#[derive(Debug, sqlx::FromRow)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Value>,
}

pub async fn referrers(
    pool: &PgPool,
    repository: &RepositoryName,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> sqlx::Result<Vec<Referrer>> {
    sqlx::query_as(
        "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
           FROM manifests m JOIN repositories r ON r.id = m.repository_id
          WHERE r.name = $1 AND m.subject_digest = $2
            AND ($3::text IS NULL OR m.artifact_type = $3)
          ORDER BY m.created_at, m.digest",
    )
    .bind(repository.as_str())
    .bind(subject.to_string())
    .bind(artifact_type)
    .fetch_all(pool)
    .await
}

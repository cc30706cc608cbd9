//! Blobs of the instance and their links to repositories.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use wharf_oci::{Digest, RepositoryName};

/// Size of `digest` if `repository` links it (may serve it).
pub async fn linked_size(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> sqlx::Result<Option<u64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT b.size FROM repository_blobs rb
           JOIN repositories r ON r.id = rb.repository_id
           JOIN blobs b ON b.digest = rb.digest
          WHERE r.name = $1 AND rb.digest = $2",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(s,)| s as u64))
}

/// Sizes of those of `digests` that repository `repository_id` links.
pub async fn linked_sizes(
    conn: &mut PgConnection,
    repository_id: i64,
    digests: &[String],
) -> sqlx::Result<HashMap<String, u64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT b.digest, b.size FROM repository_blobs rb
           JOIN blobs b ON b.digest = rb.digest
          WHERE rb.repository_id = $1 AND rb.digest = ANY($2)",
    )
    .bind(repository_id)
    .bind(digests)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(d, s)| (d, s as u64)).collect())
}

/// Whether the instance has `digest` (a row in `blobs`).
pub async fn exists(conn: &mut PgConnection, digest: &Digest) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = $1)")
        .bind(digest.to_string())
        .fetch_one(conn)
        .await
}

/// Record a verified blob and link it to a repository (both idempotent).
pub async fn record_and_link(
    conn: &mut PgConnection,
    repository_id: i64,
    digest: &Digest,
    size: u64,
) -> sqlx::Result<()> {
    let digest = digest.to_string();
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING")
        .bind(&digest)
        .bind(size as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(repository_id)
    .bind(&digest)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Remove a repository's link to a blob; true if there was one. The bytes stay
/// until garbage collection finds no link and no manifest referencing them.
pub async fn unlink(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "DELETE FROM repository_blobs rb USING repositories r
          WHERE r.id = rb.repository_id AND r.name = $1 AND rb.digest = $2",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Size of `digest` if the instance holds it and a manifest of repository
/// `repository` references it: a proxy-cache repository may link such a
/// blob (cached through another repository) instead of fetching it again.
pub async fn referenced_elsewhere(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> sqlx::Result<Option<u64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT b.size FROM blobs b
          WHERE b.digest = $2
            AND EXISTS (SELECT 1 FROM manifest_references mr
                          JOIN manifests m ON m.id = mr.manifest_id
                          JOIN repositories r ON r.id = m.repository_id
                         WHERE r.name = $1 AND mr.digest = $2)",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(s,)| s as u64))
}

/// Link to repository `repository_id` those of `digests` the instance
/// already holds (a cached manifest whose layers another repository cached).
pub async fn link_present(
    conn: &mut PgConnection,
    repository_id: i64,
    digests: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest)
         SELECT $1, digest FROM blobs WHERE digest = ANY($2)
         ON CONFLICT DO NOTHING",
    )
    .bind(repository_id)
    .bind(digests)
    .execute(conn)
    .await?;
    Ok(())
}

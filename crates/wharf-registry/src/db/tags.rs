//! Tags: names pointing at manifests.

use sqlx::{PgConnection, PgPool};
use wharf_oci::RepositoryName;

/// Point `tag` at manifest `manifest_id` (create or move).
pub async fn upsert(
    conn: &mut PgConnection,
    repository_id: i64,
    tag: &str,
    manifest_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, name)
         DO UPDATE SET manifest_id = EXCLUDED.manifest_id, updated_at = now()",
    )
    .bind(repository_id)
    .bind(tag)
    .bind(manifest_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Point a tag cached from the upstream at `manifest_id`, recording that
/// the upstream was asked just now.
pub async fn upsert_cached(
    conn: &mut PgConnection,
    repository_id: i64,
    tag: &str,
    manifest_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tags (repository_id, name, manifest_id, upstream_checked_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (repository_id, name)
         DO UPDATE SET manifest_id = EXCLUDED.manifest_id, upstream_checked_at = now(),
                       updated_at = CASE WHEN tags.manifest_id = EXCLUDED.manifest_id
                                         THEN tags.updated_at ELSE now() END",
    )
    .bind(repository_id)
    .bind(tag)
    .bind(manifest_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Record that the upstream still has `tag` where the cache has it.
pub async fn mark_checked(
    pool: &PgPool,
    repository: &RepositoryName,
    tag: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tags t SET upstream_checked_at = now() FROM repositories r
          WHERE r.id = t.repository_id AND r.name = $1 AND t.name = $2",
    )
    .bind(repository.as_str())
    .bind(tag)
    .execute(pool)
    .await?;
    Ok(())
}

/// Remove a tag; true if it existed.
pub async fn delete(
    conn: &mut PgConnection,
    repository: &RepositoryName,
    tag: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "DELETE FROM tags t USING repositories r
          WHERE r.id = t.repository_id AND r.name = $1 AND t.name = $2",
    )
    .bind(repository.as_str())
    .bind(tag)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Tag names of a repository in byte order after `last` (exclusive), at most `limit`.
pub async fn list(
    pool: &PgPool,
    repository_id: i64,
    last: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM tags WHERE repository_id = $1 AND ($2::text IS NULL OR name > $2)
         ORDER BY name LIMIT $3",
    )
    .bind(repository_id)
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

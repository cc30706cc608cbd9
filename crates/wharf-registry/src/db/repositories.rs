//! Repositories are created on the first push into them.

use sqlx::{PgConnection, PgPool};
use wharf_oci::RepositoryName;

/// The id of `name`, creating the repository if it does not exist yet.
pub async fn ensure(conn: &mut PgConnection, name: &RepositoryName) -> sqlx::Result<i64> {
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO repositories (name, project) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name.as_str())
    .bind(name.project())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id,)) = inserted {
        return Ok(id);
    }
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM repositories WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(id)
}

/// The id of an existing repository.
pub async fn find(pool: &PgPool, name: &RepositoryName) -> sqlx::Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM repositories WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// The id of an existing repository, inside a transaction.
pub async fn id_of(conn: &mut PgConnection, name: &RepositoryName) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(conn)
        .await
}

/// Repository names in byte order after `last` (exclusive), at most `limit`.
pub async fn list(pool: &PgPool, last: Option<&str>, limit: i64) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM repositories WHERE ($1::text IS NULL OR name > $1)
         ORDER BY name LIMIT $2",
    )
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

//! Upload sessions. The store's resumable state lives here so any replica can
//! take the next chunk; a lease keeps two requests from appending at once.

use sqlx::PgPool;
use uuid::Uuid;
use wharf_oci::RepositoryName;
use wharf_store::UploadState;

/// How long a request may hold an upload before another may take it over
/// (covers a replica that died mid-request).
const LEASE_SECS: f64 = 15.0 * 60.0;

/// Outcome of trying to take an upload for a request.
pub enum Lease {
    Acquired(UploadState),
    /// Another request is appending right now.
    Busy(UploadState),
    Unknown,
}

fn decode(v: serde_json::Value) -> sqlx::Result<UploadState> {
    serde_json::from_value(v).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn encode(state: &UploadState) -> sqlx::Result<serde_json::Value> {
    serde_json::to_value(state).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub async fn create(
    pool: &PgPool,
    id: Uuid,
    repository_id: i64,
    state: &UploadState,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO uploads (id, repository_id, state) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(repository_id)
        .bind(encode(state)?)
        .execute(pool)
        .await?;
    Ok(())
}

/// The state of an upload in `repository`, if it exists.
pub async fn get(
    pool: &PgPool,
    repository: &RepositoryName,
    id: Uuid,
) -> sqlx::Result<Option<UploadState>> {
    let row: Option<(serde_json::Value,)> = sqlx::query_as(
        "SELECT u.state FROM uploads u JOIN repositories r ON r.id = u.repository_id
          WHERE r.name = $1 AND u.id = $2",
    )
    .bind(repository.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|(v,)| decode(v)).transpose()
}

/// Take the upload for this request unless another request holds it.
pub async fn lease(pool: &PgPool, repository: &RepositoryName, id: Uuid) -> sqlx::Result<Lease> {
    let taken: Option<(serde_json::Value,)> = sqlx::query_as(
        "UPDATE uploads u SET lease_until = now() + make_interval(secs => $3)
           FROM repositories r
          WHERE r.id = u.repository_id AND r.name = $1 AND u.id = $2
            AND (u.lease_until IS NULL OR u.lease_until < now())
        RETURNING u.state",
    )
    .bind(repository.as_str())
    .bind(id)
    .bind(LEASE_SECS)
    .fetch_optional(pool)
    .await?;
    if let Some((v,)) = taken {
        return Ok(Lease::Acquired(decode(v)?));
    }
    Ok(match get(pool, repository, id).await? {
        Some(state) => Lease::Busy(state),
        None => Lease::Unknown,
    })
}

/// Save the state after a successful append and give the lease back.
pub async fn save_and_release(pool: &PgPool, id: Uuid, state: &UploadState) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE uploads SET state = $2, lease_until = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(encode(state)?)
    .execute(pool)
    .await?;
    Ok(())
}

/// Give the lease back without changing the state (the request failed).
pub async fn release(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE uploads SET lease_until = NULL WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete<'c, E: sqlx::PgExecutor<'c>>(executor: E, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Uploads untouched for longer than `age_secs` and not leased: abandoned.
pub async fn abandoned(pool: &PgPool, age_secs: i64) -> sqlx::Result<Vec<(Uuid, UploadState)>> {
    let rows: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT id, state FROM uploads
          WHERE updated_at < now() - make_interval(secs => $1)
            AND (lease_until IS NULL OR lease_until < now())
          LIMIT 1000",
    )
    .bind(age_secs as f64)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, v)| Ok((id, decode(v)?)))
        .collect()
}

//! Per-project storage quotas, Harbor's semantics: the only resource is
//! `storage` in bytes, `-1` is unlimited, and a project's usage counts each
//! blob once however many of its artifacts and repositories reference it
//! (and again in every other project that holds it).
//!
//! # How usage stays exact
//!
//! `project_blobs` lists the blobs a project's manifests reference — config,
//! layers and each manifest's own bytes — with their sizes, and
//! `project_quotas.used` is their total. Both change only inside the
//! transaction of the push or delete that causes the change (the registry's
//! admission seam, [`crate::admission`]), after locking the project's quota
//! row with `SELECT ... FOR UPDATE`. Concurrent pushes and deletes in one
//! project therefore take turns between that lock and their commit: each
//! sees every digest the previous one charged or released, a digest is
//! charged once, and a push that is refused or fails rolls its charge back
//! with everything else. Pushes to different projects never wait for each
//! other.
//!
//! Blobs uploaded but not (yet) referenced by a manifest are not charged, as
//! in Harbor: a push is charged when its manifest lands. [`recalculate`]
//! rebuilds a project's rows from its manifests, for repair.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection, PgExecutor, PgPool, Postgres};

use crate::error::{Error, Result};
use crate::{Listing, Page};

/// The hard limit that means "no limit".
pub const UNLIMITED: i64 = -1;

/// The largest hard limit accepted: 1024 TiB, as in Harbor.
pub const MAX_LIMIT: i64 = 1024 * 1024 * 1024 * 1024 * 1024;

/// Check a hard limit: `-1`, or 1 byte to [`MAX_LIMIT`]. Zero is refused
/// (Harbor's rule): it would make the project read-only, which is not what
/// a quota is for.
pub fn check_hard_limit(limit: i64) -> Result<()> {
    if limit == UNLIMITED || (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid storage limit {limit}: use -1 for unlimited or a number of bytes from 1 to {MAX_LIMIT} (1024 TiB)"
        )))
    }
}

/// `10485760` → `10.0 MiB`; below 1 KiB, whole bytes (`512 B`).
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.unsigned_abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A limit for messages: `10.0 MiB (10485760 B)` or `unlimited`.
fn describe_limit(limit: i64) -> String {
    if limit == UNLIMITED {
        "unlimited".to_owned()
    } else {
        format!("{} ({limit} B)", human_size(limit))
    }
}

/// A project's quota as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Quota {
    /// The quota's own id (Harbor's `/quotas/{id}`).
    pub id: i64,
    /// The project it limits.
    pub project_id: i64,
    /// The project's name.
    pub project_name: String,
    /// The project owner's username.
    pub owner_name: String,
    /// The hard limit in bytes; -1 is unlimited.
    pub hard: i64,
    /// Bytes in use.
    pub used: i64,
    /// When the quota was created (with its project).
    pub created_at: DateTime<Utc>,
    /// When its limit or usage last changed.
    pub updated_at: DateTime<Utc>,
}

const QUOTA_SELECT: &str = "SELECT q.id, q.project_id, p.name AS project_name,
            u.username AS owner_name, p.storage_limit AS hard, q.used,
            q.created_at, q.updated_at
       FROM project_quotas q
       JOIN projects p ON p.id = q.project_id AND NOT p.deleted
       JOIN users u ON u.id = p.owner_id";

/// The quota with this id (of a live project).
pub async fn get_quota(db: impl PgExecutor<'_>, id: i64) -> Result<Quota> {
    sqlx::query_as::<_, Quota>(sqlx::AssertSqlSafe(format!(
        "{QUOTA_SELECT} WHERE q.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
}

/// The quota of a live project.
pub async fn quota_of_project(db: impl PgExecutor<'_>, project_id: i64) -> Result<Quota> {
    sqlx::query_as::<_, Quota>(sqlx::AssertSqlSafe(format!(
        "{QUOTA_SELECT} WHERE q.project_id = $1"
    )))
    .bind(project_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
}

/// Bytes in use per project, for these projects (absent ids have no quota
/// row, which cannot happen for live projects).
pub async fn usage_of(db: impl PgExecutor<'_>, project_ids: &[i64]) -> Result<BTreeMap<i64, i64>> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT project_id, used FROM project_quotas WHERE project_id = ANY($1)")
            .bind(project_ids)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A column quotas can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSort {
    /// `hard.storage`
    Hard,
    /// `used.storage`
    Used,
    /// `creation_time`
    CreationTime,
    /// `update_time`
    UpdateTime,
}

impl QuotaSort {
    fn column(self) -> &'static str {
        match self {
            QuotaSort::Hard => "p.storage_limit",
            QuotaSort::Used => "q.used",
            QuotaSort::CreationTime => "q.created_at",
            QuotaSort::UpdateTime => "q.updated_at",
        }
    }
}

/// Filter, order and page for [`list_quotas`].
#[derive(Debug, Clone, Default)]
pub struct QuotaQuery {
    /// Only the quota of this project.
    pub project_id: Option<i64>,
    /// Sort keys, each with `true` for descending; ties (and an empty list)
    /// fall back to the quota id.
    pub sort: Vec<(QuotaSort, bool)>,
    /// Which page.
    pub page: Page,
}

/// Quotas of live projects matching `query`.
pub async fn list_quotas(
    db: impl Acquire<'_, Database = Postgres>,
    query: &QuotaQuery,
) -> Result<Listing<Quota>> {
    let mut conn = db.acquire().await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM project_quotas q JOIN projects p ON p.id = q.project_id
          WHERE NOT p.deleted AND ($1::bigint IS NULL OR q.project_id = $1)",
    )
    .bind(query.project_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("q.id ASC".into());
    let (limit, offset) = query.page.limit_offset();
    let items = sqlx::query_as::<_, Quota>(sqlx::AssertSqlSafe(format!(
        "{QUOTA_SELECT} WHERE ($1::bigint IS NULL OR q.project_id = $1)
         ORDER BY {} LIMIT $2 OFFSET $3",
        order.join(", ")
    )))
    .bind(query.project_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Listing { items, total })
}

/// Set a project's hard limit (checked with [`check_hard_limit`]). Waits
/// for pushes in flight in the project, so none is admitted against the
/// old limit after this returns.
pub async fn set_hard_limit(conn: &mut PgConnection, project_id: i64, limit: i64) -> Result<()> {
    check_hard_limit(limit)?;
    let locked: Option<i64> = sqlx::query_scalar(
        "UPDATE project_quotas SET updated_at = now() WHERE project_id = $1 RETURNING id",
    )
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Err(Error::NotFound);
    }
    crate::projects::set_storage_limit(&mut *conn, project_id, limit).await
}

// ---------------------------------------------------------------------------
// Accounting inside the registry's transactions.

/// A project's quota row, locked until the end of the caller's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedQuota {
    /// The project.
    pub project_id: i64,
    /// Its name (the first path segment of its repositories).
    pub project_name: String,
    /// The hard limit in bytes; -1 is unlimited.
    pub limit: i64,
    /// Bytes in use, as of the lock.
    pub used: i64,
}

/// Lock the quota row of the live project named `project_name` (`None` if
/// there is no such project: a registry without projects charges nothing).
pub async fn lock(
    conn: &mut PgConnection,
    project_name: &str,
) -> sqlx::Result<Option<LockedQuota>> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT q.project_id, p.storage_limit, q.used
           FROM project_quotas q JOIN projects p ON p.id = q.project_id
          WHERE p.name = $1 AND NOT p.deleted
            FOR UPDATE OF q",
    )
    .bind(project_name)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(project_id, limit, used)| LockedQuota {
        project_id,
        project_name: project_name.to_owned(),
        limit,
        used,
    }))
}

/// A push that would take the project over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The project's name.
    pub project: String,
    /// Its hard limit in bytes.
    pub limit: i64,
    /// Bytes in use before the push.
    pub used: i64,
    /// Bytes the push would add (blobs new to the project).
    pub adding: i64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota exceeded in project {}: limit {}, in use {} ({} B), this push adds {} ({} B); \
             delete artifacts from the project or ask a system administrator to raise its limit",
            self.project,
            describe_limit(self.limit),
            human_size(self.used),
            self.used,
            human_size(self.adding),
            self.adding,
        )
    }
}

/// What a `QUOTA_WARNING` webhook says when a push takes the project to
/// `after` bytes.
pub fn warning_message(quota: &LockedQuota, after: i64) -> String {
    let percent = if quota.limit > 0 {
        i128::from(after) * 100 / i128::from(quota.limit)
    } else {
        0
    };
    format!(
        "quota usage of project {} reached {percent}%: {} ({after} B) in use of {}",
        quota.project_name,
        human_size(after),
        describe_limit(quota.limit),
    )
}

/// Charge `blobs` (digest, size) to the locked project: those not already
/// charged to it are recorded and their sizes added to its usage, unless
/// that takes it over its limit, in which case nothing is recorded and the
/// refusal says by how much. Returns the bytes added.
pub async fn charge(
    conn: &mut PgConnection,
    quota: &LockedQuota,
    blobs: &[(String, u64)],
) -> sqlx::Result<std::result::Result<i64, QuotaExceeded>> {
    let digests: Vec<&str> = blobs.iter().map(|(d, _)| d.as_str()).collect();
    let charged: HashSet<String> = sqlx::query_scalar(
        "SELECT digest FROM project_blobs WHERE project_id = $1 AND digest = ANY($2)",
    )
    .bind(quota.project_id)
    .bind(&digests)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let mut seen = HashSet::new();
    let (new_digests, new_sizes): (Vec<&str>, Vec<i64>) = blobs
        .iter()
        .filter(|(d, _)| !charged.contains(d) && seen.insert(d.as_str()))
        .map(|(d, size)| (d.as_str(), i64::try_from(*size).unwrap_or(i64::MAX)))
        .unzip();
    let adding: i64 = new_sizes.iter().fold(0i64, |a, &s| a.saturating_add(s));
    if adding == 0 {
        return Ok(Ok(0));
    }
    if quota.limit != UNLIMITED && quota.used.saturating_add(adding) > quota.limit {
        return Ok(Err(QuotaExceeded {
            project: quota.project_name.clone(),
            limit: quota.limit,
            used: quota.used,
            adding,
        }));
    }
    sqlx::query(
        "INSERT INTO project_blobs (project_id, digest, size)
         SELECT $1, d, s FROM UNNEST($2::text[], $3::bigint[]) AS x(d, s)",
    )
    .bind(quota.project_id)
    .bind(&new_digests)
    .bind(&new_sizes)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE project_quotas SET used = used + $2, updated_at = now() WHERE project_id = $1",
    )
    .bind(quota.project_id)
    .bind(adding)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(adding))
}

/// Release what the manifests `manifest_ids` (of the locked project) hold:
/// every blob they reference, and their own bytes, that no other manifest
/// of the project references. Call inside the transaction that deletes
/// them, before the rows go. Returns the bytes released.
///
/// The registry's deletes do this through admission; anything else that
/// removes manifests (a repository delete) must call it too, or usage
/// drifts until the next [`recalculate`].
pub async fn release_manifests(
    conn: &mut PgConnection,
    quota: &LockedQuota,
    manifest_ids: &[i64],
) -> sqlx::Result<i64> {
    if manifest_ids.is_empty() {
        return Ok(0);
    }
    let released: i64 = sqlx::query_scalar(
        "WITH going AS (
            SELECT id, digest FROM manifests WHERE id = ANY($3)
         ), candidates AS (
            SELECT digest FROM going
            UNION
            SELECT mr.digest FROM manifest_references mr JOIN going g ON g.id = mr.manifest_id
             WHERE mr.kind = 'blob'
         ), staying AS (
            SELECT m.id, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.project = $2 AND m.id <> ALL($3)
         ), kept AS (
            SELECT c.digest FROM candidates c
             WHERE EXISTS (SELECT 1 FROM staying s WHERE s.digest = c.digest)
                OR EXISTS (SELECT 1 FROM manifest_references mr JOIN staying s ON s.id = mr.manifest_id
                            WHERE mr.digest = c.digest AND mr.kind = 'blob')
         ), gone AS (
            DELETE FROM project_blobs pb
             WHERE pb.project_id = $1
               AND pb.digest IN (SELECT digest FROM candidates EXCEPT SELECT digest FROM kept)
            RETURNING pb.size
         )
         SELECT COALESCE(sum(size), 0)::bigint FROM gone",
    )
    .bind(quota.project_id)
    .bind(&quota.project_name)
    .bind(manifest_ids)
    .fetch_one(&mut *conn)
    .await?;
    if released > 0 {
        sqlx::query(
            "UPDATE project_quotas SET used = GREATEST(used - $2, 0), updated_at = now()
              WHERE project_id = $1",
        )
        .bind(quota.project_id)
        .bind(released)
        .execute(&mut *conn)
        .await?;
    }
    Ok(released)
}

/// Usage before and after a [`recalculate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recalculated {
    /// The project.
    pub project_id: i64,
    /// What the quota said before.
    pub before: i64,
    /// What the manifests add up to (now recorded).
    pub after: i64,
}

/// Recompute a live project's usage from its manifests and rebuild its
/// charged blobs, under the quota row's lock (so it never races a push).
/// Repairs usage that drifted (a delete that bypassed the registry, a
/// manual edit).
pub async fn recalculate(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
) -> Result<Recalculated> {
    let mut tx = db.begin().await?;
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT p.name, q.used FROM project_quotas q JOIN projects p ON p.id = q.project_id
          WHERE q.project_id = $1 AND NOT p.deleted
            FOR UPDATE OF q",
    )
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((name, before)) = row else {
        return Err(Error::NotFound);
    };
    sqlx::query("DELETE FROM project_blobs WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO project_blobs (project_id, digest, size)
         SELECT $1, x.digest, max(x.size)
           FROM (SELECT m.digest, m.size
                   FROM manifests m JOIN repositories r ON r.id = m.repository_id
                  WHERE r.project = $2
                 UNION ALL
                 SELECT b.digest, b.size
                   FROM manifests m JOIN repositories r ON r.id = m.repository_id
                   JOIN manifest_references mr ON mr.manifest_id = m.id AND mr.kind = 'blob'
                   JOIN blobs b ON b.digest = mr.digest
                  WHERE r.project = $2) AS x
          GROUP BY x.digest",
    )
    .bind(project_id)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    let after: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM project_blobs WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await?;
    if after != before {
        sqlx::query(
            "UPDATE project_quotas SET used = $2, updated_at = now() WHERE project_id = $1",
        )
        .bind(project_id)
        .bind(after)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if before != after {
        tracing::warn!(
            project = %name,
            before,
            after,
            "quota usage was wrong and has been recalculated"
        );
    }
    Ok(Recalculated {
        project_id,
        before,
        after,
    })
}

/// [`recalculate`] every live project, each in its own transaction.
pub async fn recalculate_all(pool: &PgPool) -> Result<Vec<Recalculated>> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE NOT deleted ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match recalculate(pool, id).await {
            Ok(done) => out.push(done),
            // Deleted since the list was read.
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The job kind of quota repair ([`RecalculateJob`]).
pub const RECALCULATE_JOB: &str = "quota_recalculate";

/// Quota repair as a background job: payload `{"project_id": N}`
/// recalculates one project, `{}` every project. Each project whose usage
/// was wrong is logged to the execution (before and after). Idempotent, so
/// retries and duplicate runs are harmless.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecalculateJob;

#[async_trait::async_trait]
impl wharf_jobs::JobHandler for RecalculateJob {
    async fn run(
        &self,
        ctx: wharf_jobs::JobContext,
        payload: serde_json::Value,
    ) -> std::result::Result<(), wharf_jobs::JobFailure> {
        use wharf_jobs::JobFailure;
        let failed = |e: Error| match e {
            Error::Database(e) => JobFailure::from(e),
            other => JobFailure::Fatal(other.to_string()),
        };
        let done = match payload.get("project_id") {
            None | Some(serde_json::Value::Null) => {
                recalculate_all(&ctx.pool).await.map_err(failed)?
            }
            Some(id) => {
                let id = id.as_i64().ok_or_else(|| {
                    JobFailure::Fatal(format!("project_id must be a number, not {id}"))
                })?;
                match recalculate(&ctx.pool, id).await {
                    Ok(one) => vec![one],
                    Err(Error::NotFound) => {
                        return Err(JobFailure::Fatal(format!("project {id} does not exist")));
                    }
                    Err(e) => return Err(failed(e)),
                }
            }
        };
        let mut fixed = 0;
        for r in done.iter().filter(|r| r.before != r.after) {
            fixed += 1;
            ctx.log(format!(
                "project {}: usage was {} B, recalculated {} B",
                r.project_id, r.before, r.after
            ))
            .await;
        }
        ctx.log(format!(
            "recalculated {} project(s), {fixed} corrected",
            done.len()
        ))
        .await;
        Ok(())
    }
}

/// Queue a [`RecalculateJob`] for one project (`Some(id)`) or all, in the
/// caller's transaction. A request already waiting for the same target is
/// replaced rather than duplicated.
pub async fn enqueue_recalculation(
    conn: &mut PgConnection,
    project_id: Option<i64>,
) -> std::result::Result<(), wharf_jobs::JobsError> {
    let (payload, key) = match project_id {
        Some(id) => (
            serde_json::json!({ "project_id": id }),
            format!("{RECALCULATE_JOB}:{id}"),
        ),
        None => (serde_json::json!({}), format!("{RECALCULATE_JOB}:all")),
    };
    wharf_jobs::enqueue(
        conn,
        RECALCULATE_JOB,
        payload,
        wharf_jobs::EnqueueOptions {
            job_key: Some(key),
            ..Default::default()
        },
    )
    .await
}

/// Why [`upload_allowed`] refuses: the project is already full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFull {
    /// The project's name.
    pub project: String,
    /// Its hard limit.
    pub limit: i64,
    /// Bytes in use.
    pub used: i64,
}

impl std::fmt::Display for ProjectFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota exceeded in project {}: limit {}, in use {} ({} B), nothing more can be pushed; \
             delete artifacts from the project or ask a system administrator to raise its limit",
            self.project,
            describe_limit(self.limit),
            human_size(self.used),
            self.used,
        )
    }
}

/// Whether a blob upload may start in the project named `project_name`:
/// refused only when the project is already at or over its limit (what an
/// upload will add is known only when its manifest arrives).
pub async fn upload_allowed(
    db: impl PgExecutor<'_>,
    project_name: &str,
) -> sqlx::Result<std::result::Result<(), ProjectFull>> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT p.storage_limit, q.used
           FROM project_quotas q JOIN projects p ON p.id = q.project_id
          WHERE p.name = $1 AND NOT p.deleted",
    )
    .bind(project_name)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some((limit, used)) if limit != UNLIMITED && used >= limit => Err(ProjectFull {
            project: project_name.to_owned(),
            limit,
            used,
        }),
        _ => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(human_size(1_258_291), "1.2 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn hard_limits_follow_harbors_rule() {
        assert!(check_hard_limit(-1).is_ok());
        assert!(check_hard_limit(1).is_ok());
        assert!(check_hard_limit(MAX_LIMIT).is_ok());
        assert!(check_hard_limit(0).is_err());
        assert!(check_hard_limit(-2).is_err());
        assert!(check_hard_limit(MAX_LIMIT + 1).is_err());
    }

    #[test]
    fn the_refusal_names_limit_usage_and_size() {
        let refusal = QuotaExceeded {
            project: "team".into(),
            limit: 10 * 1024 * 1024,
            used: 9_961_472,
            adding: 1_258_291,
        };
        let text = refusal.to_string();
        assert!(
            text.starts_with(
                "quota exceeded in project team: limit 10.0 MiB (10485760 B), \
                 in use 9.5 MiB (9961472 B), this push adds 1.2 MiB (1258291 B)"
            ),
            "{text}"
        );
    }
}

//! Purging old audit-log entries (Harbor's "purge audit log" job).
//!
//! Deletes entries older than `audit_retention_hour` whose operation is in
//! `include_operations` (Harbor's comma list: `create,delete,pull`; newer
//! Harbor clients send `include_event_types` such as `create_artifact`,
//! which select by operation and resource type). A dry run only counts.
//! Deletion goes in batches of [`BATCH`] rows, each its own short
//! statement, so the purge never holds a long lock on `audit_logs` while
//! pushes write to it; a stop request is honoured between batches.

use serde_json::{Map, Value, json};
use sqlx::PgPool;
use wharf_jobs::{JobContext, JobFailure, JobHandler};

/// The job kind (and execution kind) of audit-log purges.
pub const KIND: &str = "purge_audit";

/// Harbor's vendor type, the `job_name` of purge histories.
pub const VENDOR_TYPE: &str = "PURGE_AUDIT_LOG";

/// The schedule name of the purge.
pub const SCHEDULE_NAME: &str = "purge_audit";

/// Rows deleted per statement.
pub const BATCH: i64 = 5_000;

/// What a purge does, read from Harbor's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeParams {
    /// Keep entries younger than this many hours.
    pub retention_hours: i64,
    /// Operations whose old entries go (lower case); empty: none.
    pub operations: Vec<String>,
    /// (operation, resource type) pairs from `include_event_types`.
    pub event_types: Vec<(String, String)>,
    /// Count only.
    pub dry_run: bool,
}

fn comma_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect()),
        Some(other) => Err(format!("expected a comma-separated string, got {other}")),
    }
}

impl PurgeParams {
    /// Read and check Harbor's parameters. `audit_retention_hour` is
    /// required, and one of `include_operations` / `include_event_types`.
    pub fn from_parameters(p: &Map<String, Value>) -> Result<PurgeParams, String> {
        let retention_hours = match p.get("audit_retention_hour") {
            None | Some(Value::Null) => return Err("audit_retention_hour should provide".into()),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|h| *h >= 0)
                .ok_or_else(|| {
                    format!("audit_retention_hour must be a whole number of hours ≥ 0, got {v}")
                })?,
        };
        if !p.contains_key("include_operations") && !p.contains_key("include_event_types") {
            return Err("include_operations should provide".into());
        }
        let operations = comma_list(p.get("include_operations"))
            .map_err(|e| format!("include_operations: {e}"))?;
        let event_types = comma_list(p.get("include_event_types"))
            .map_err(|e| format!("include_event_types: {e}"))?
            .into_iter()
            .filter_map(|t| {
                t.split_once('_')
                    .map(|(op, res)| (op.to_owned(), res.to_owned()))
            })
            .collect();
        let dry_run = match p.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => return Err(format!("dry_run must be true or false, got {other}")),
        };
        Ok(PurgeParams {
            retention_hours,
            operations,
            event_types,
            dry_run,
        })
    }

    /// Whether it can match anything at all.
    pub fn selects_anything(&self) -> bool {
        !self.operations.is_empty() || !self.event_types.is_empty()
    }
}

/// The predicate on `audit_logs` every purge statement shares:
/// `$1` cutoff, `$2` operations, `$3` event operations, `$4` event
/// resource types (matched pairwise).
const MATCHES: &str = "op_time < $1 AND (lower(operation) = ANY($2) \
     OR (lower(operation), lower(resource_type)) IN \
        (SELECT * FROM unnest($3::text[], $4::text[])))";

/// How many entries `params` selects now.
pub async fn count_matching(pool: &PgPool, params: &PurgeParams) -> Result<i64, sqlx::Error> {
    let (ops, res): (Vec<String>, Vec<String>) = params.event_types.iter().cloned().unzip();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM audit_logs WHERE {MATCHES}"
    )))
    .bind(cutoff(params))
    .bind(&params.operations)
    .bind(&ops)
    .bind(&res)
    .fetch_one(pool)
    .await
}

fn cutoff(params: &PurgeParams) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::hours(params.retention_hours)
}

/// The purge job handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct PurgeAuditJob;

#[async_trait::async_trait]
impl JobHandler for PurgeAuditJob {
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<(), JobFailure> {
        let empty = Map::new();
        let params = PurgeParams::from_parameters(payload.as_object().unwrap_or(&empty))
            .map_err(JobFailure::Fatal)?;
        let what = if params.selects_anything() {
            let mut parts = params.operations.clone();
            parts.extend(params.event_types.iter().map(|(o, r)| format!("{o}_{r}")));
            parts.join(",")
        } else {
            "nothing (no operation selected)".into()
        };
        ctx.log(format!(
            "purging audit logs older than {} hours, operations: {what}{}",
            params.retention_hours,
            if params.dry_run { " (dry run)" } else { "" }
        ))
        .await;
        if !params.selects_anything() {
            finish(&ctx, 0, &params).await;
            return Ok(());
        }
        if params.dry_run {
            let n = count_matching(&ctx.pool, &params).await?;
            ctx.log(format!("dry run: {n} audit log entries would be deleted"))
                .await;
            finish(&ctx, n, &params).await;
            return Ok(());
        }

        let cutoff = cutoff(&params);
        let (ops, res): (Vec<String>, Vec<String>) = params.event_types.iter().cloned().unzip();
        let mut deleted = 0i64;
        loop {
            // SKIP LOCKED: rows another purge (or a concurrent delete) holds
            // are left to it rather than waited for.
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM audit_logs WHERE id IN ( \
                   SELECT id FROM audit_logs WHERE {MATCHES} \
                   ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)"
            )))
            .bind(cutoff)
            .bind(&params.operations)
            .bind(&ops)
            .bind(&res)
            .bind(BATCH)
            .execute(&ctx.pool)
            .await?
            .rows_affected();
            deleted += n as i64;
            if (n as i64) < BATCH {
                break;
            }
            ctx.log(format!("deleted {deleted} audit log entries so far"))
                .await;
            if ctx.stop_requested().await? {
                ctx.log(format!(
                    "stopped after deleting {deleted} audit log entries"
                ))
                .await;
                finish(&ctx, deleted, &params).await;
                return Ok(());
            }
        }
        ctx.log(format!("purged {deleted} audit log entries")).await;
        finish(&ctx, deleted, &params).await;
        Ok(())
    }
}

async fn finish(ctx: &JobContext, count: i64, params: &PurgeParams) {
    let Some(id) = ctx.execution_id else {
        return;
    };
    let result = if params.dry_run {
        json!({"dry_run": true, "would_delete": count})
    } else {
        json!({"dry_run": false, "deleted": count})
    };
    // Success or Stopped as the execution's state says; the dispatcher's own
    // finish afterwards is then a no-op.
    if let Err(e) =
        wharf_jobs::finish(&ctx.pool, id, wharf_jobs::Outcome::Success, Some(result)).await
    {
        tracing::warn!(execution = id, error = %e, "could not record the purge result");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Result<PurgeParams, String> {
        PurgeParams::from_parameters(v.as_object().unwrap())
    }

    #[test]
    fn harbor_parameters_are_read_and_checked() {
        let p = params(json!({"audit_retention_hour": 168, "include_operations": "create, Delete,pull", "dry_run": true})).unwrap();
        assert_eq!(p.retention_hours, 168);
        assert_eq!(p.operations, vec!["create", "delete", "pull"]);
        assert!(p.dry_run && p.selects_anything());
        let p = params(json!({"audit_retention_hour": "24", "include_event_types": "create_artifact,pull_artifact"})).unwrap();
        assert_eq!(
            p.event_types,
            vec![
                ("create".into(), "artifact".into()),
                ("pull".into(), "artifact".into())
            ]
        );
        assert!(!p.dry_run);
        let none = params(json!({"audit_retention_hour": 1, "include_operations": ""})).unwrap();
        assert!(!none.selects_anything());
        assert!(
            params(json!({"include_operations": "create"}))
                .unwrap_err()
                .contains("audit_retention_hour")
        );
        assert!(
            params(json!({"audit_retention_hour": 1}))
                .unwrap_err()
                .contains("include_operations")
        );
        assert!(params(json!({"audit_retention_hour": -1, "include_operations": "x"})).is_err());
        assert!(params(json!({"audit_retention_hour": 1.5, "include_operations": "x"})).is_err());
        assert!(
            params(
                json!({"audit_retention_hour": 1, "include_operations": "x", "dry_run": "maybe"})
            )
            .is_err()
        );
    }
}

//! Replication policies, their executions (rows of wharf-jobs'
//! `job_executions` of kind [`JOB_KIND`]) with one task per artifact, and
//! the job that runs them on any worker sharing the queue.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wharf_jobs::{EnqueueOptions, JobContext, JobFailure, JobHandler, Trigger};

use crate::client::ReplicationError;
use crate::copy::{Copier, CopyOptions, TagOutcome, is_accessory_tag};
use crate::filter::{Filters, destination_repository};
use crate::registries::Registries;

/// The wharf-jobs kind of a replication execution.
pub const JOB_KIND: &str = "replication";

/// Upload chunk size when a policy asks for `copy_by_chunk`.
pub const CHUNK_SIZE: usize = 10 * 1024 * 1024;

/// A policy as created or updated.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    pub src_registry_id: i64,
    pub dest_registry_id: i64,
    pub dest_namespace: Option<String>,
    pub dest_namespace_replace_count: i32,
    /// Doublestar pattern on repository names (`library/**`).
    pub name_filter: Option<String>,
    /// Doublestar pattern on tags (`v*`, `{1.0,2.0}`).
    pub tag_filter: Option<String>,
    pub override_tags: bool,
    pub replicate_deletion: bool,
    /// KiB/s per blob stream.
    pub speed_kb: Option<i32>,
    pub copy_by_chunk: bool,
    pub enabled: bool,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub src_registry_id: i64,
    pub dest_registry_id: i64,
    pub dest_namespace: Option<String>,
    pub dest_namespace_replace_count: i32,
    pub name_filter: Option<String>,
    pub tag_filter: Option<String>,
    #[sqlx(rename = "override")]
    pub override_tags: bool,
    pub replicate_deletion: bool,
    pub speed_kb: Option<i32>,
    pub copy_by_chunk: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One artifact of an execution.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    pub src_resource: String,
    pub dst_resource: String,
    /// `copy` or `deletion`.
    pub operation: String,
    pub status: String,
    pub bytes_copied: i64,
    pub attempts: i32,
    pub error: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, description, src_registry_id, dest_registry_id, dest_namespace, \
     dest_namespace_replace_count, name_filter, tag_filter, override, replicate_deletion, \
     speed_kb, copy_by_chunk, enabled, created_at, updated_at";

pub async fn create_policy(pool: &PgPool, spec: &PolicySpec) -> Result<Policy, ReplicationError> {
    Filters::new(spec.name_filter.as_deref(), spec.tag_filter.as_deref())?;
    if spec.speed_kb.is_some_and(|s| s < 0) {
        return Err(ReplicationError::Invalid(
            "speed must not be negative".into(),
        ));
    }
    let sql = format!(
        "INSERT INTO replication_policies (name, description, src_registry_id, dest_registry_id, \
         dest_namespace, dest_namespace_replace_count, name_filter, tag_filter, override, \
         replicate_deletion, speed_kb, copy_by_chunk, enabled) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Policy>(sqlx::AssertSqlSafe(sql))
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.src_registry_id)
        .bind(spec.dest_registry_id)
        .bind(&spec.dest_namespace)
        .bind(spec.dest_namespace_replace_count)
        .bind(&spec.name_filter)
        .bind(&spec.tag_filter)
        .bind(spec.override_tags)
        .bind(spec.replicate_deletion)
        .bind(spec.speed_kb)
        .bind(spec.copy_by_chunk)
        .bind(spec.enabled)
        .fetch_one(pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => ReplicationError::Invalid(
                format!("a replication policy named {:?} already exists", spec.name),
            ),
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => ReplicationError::Invalid(
                "the source or destination registry does not exist".into(),
            ),
            _ => ReplicationError::Database(e),
        })
}

pub async fn get_policy(pool: &PgPool, id: i64) -> Result<Option<Policy>, ReplicationError> {
    let sql = format!("SELECT {COLUMNS} FROM replication_policies WHERE id = $1");
    Ok(sqlx::query_as::<_, Policy>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub async fn list_policies(pool: &PgPool) -> Result<Vec<Policy>, ReplicationError> {
    let sql = format!("SELECT {COLUMNS} FROM replication_policies ORDER BY id");
    Ok(sqlx::query_as::<_, Policy>(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?)
}

pub async fn delete_policy(pool: &PgPool, id: i64) -> Result<bool, ReplicationError> {
    set_cron_trigger(pool, id, None).await?;
    let done = sqlx::query("DELETE FROM replication_policies WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Create an execution of policy `id` and queue it, in one transaction.
pub async fn start_execution(
    pool: &PgPool,
    policy_id: i64,
    trigger: Trigger,
) -> Result<i64, ReplicationError> {
    let policy = get_policy(pool, policy_id)
        .await?
        .ok_or_else(|| ReplicationError::Invalid(format!("no replication policy {policy_id}")))?;
    if !policy.enabled {
        return Err(ReplicationError::Invalid(format!(
            "replication policy {:?} is disabled",
            policy.name
        )));
    }
    let params = serde_json::json!({ "policy_id": policy_id });
    let mut tx = pool.begin().await?;
    let id = wharf_jobs::create_execution(&mut *tx, JOB_KIND, trigger, params.clone(), None)
        .await
        .map_err(|e| ReplicationError::Invalid(e.to_string()))?;
    wharf_jobs::enqueue(
        &mut tx,
        JOB_KIND,
        wharf_jobs::with_execution(params, id),
        EnqueueOptions {
            max_attempts: Some(5),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| ReplicationError::Invalid(e.to_string()))?;
    tx.commit().await?;
    Ok(id)
}

/// The wharf-jobs schedule name of a policy's cron trigger.
pub fn schedule_name(policy_id: i64) -> String {
    format!("replication-policy-{policy_id}")
}

/// Give policy `policy_id` a scheduled trigger (six-field cron, as Harbor):
/// every tick creates an execution with trigger `Schedule`, once in the
/// cluster. `None` removes it.
pub async fn set_cron_trigger(
    pool: &PgPool,
    policy_id: i64,
    cron: Option<&str>,
) -> Result<(), ReplicationError> {
    let name = schedule_name(policy_id);
    match cron {
        Some(cron) => {
            let mut conn = pool.acquire().await?;
            wharf_jobs::set_schedule(
                &mut conn,
                &name,
                JOB_KIND,
                cron,
                serde_json::json!({ "policy_id": policy_id }),
            )
            .await
            .map_err(|e| ReplicationError::Invalid(e.to_string()))?;
        }
        None => {
            wharf_jobs::delete_schedule(pool, &name)
                .await
                .map_err(|e| ReplicationError::Invalid(e.to_string()))?;
        }
    }
    Ok(())
}

pub async fn list_tasks(pool: &PgPool, execution_id: i64) -> Result<Vec<Task>, ReplicationError> {
    Ok(sqlx::query_as::<_, Task>(
        "SELECT id, execution_id, src_resource, dst_resource, operation, status, bytes_copied, attempts, \
         error, started_at, finished_at FROM replication_tasks WHERE execution_id = $1 ORDER BY id",
    )
    .bind(execution_id)
    .fetch_all(pool)
    .await?)
}

/// The job: plan the execution's tasks once (source repositories and
/// tags through the policy's filters), then copy every task not yet
/// succeeded. Failed tasks make the attempt fail so the queue retries them
/// with backoff; the last attempt ends with the first task error.
pub struct ReplicationJob {
    registries: Registries,
}

impl ReplicationJob {
    pub fn new(registries: Registries) -> Arc<Self> {
        Arc::new(Self { registries })
    }

    async fn plan(
        &self,
        pool: &PgPool,
        execution_id: i64,
        policy: &Policy,
        copier: &Copier,
        src: &crate::RegistryClient,
    ) -> Result<(), ReplicationError> {
        let planned: i64 =
            sqlx::query_scalar("SELECT count(*) FROM replication_tasks WHERE execution_id = $1")
                .bind(execution_id)
                .fetch_one(pool)
                .await?;
        if planned > 0 {
            return Ok(());
        }
        let filters = Filters::new(policy.name_filter.as_deref(), policy.tag_filter.as_deref())?;
        let mut tx = pool.begin().await?;
        // Sorted, so the tasks run in an order that does not depend on the server.
        let mut repos = src.catalog().await?;
        repos.sort();
        for repo in repos {
            if !filters.repository(&repo) {
                continue;
            }
            let target = destination_repository(
                &repo,
                policy.dest_namespace.as_deref(),
                policy.dest_namespace_replace_count,
            );
            let mut tags = copier.artifact_tags(&repo).await?;
            tags.sort();
            if policy.replicate_deletion {
                // Destination tags the source no longer has (within the
                // filters) are deleted there.
                let mut gone: Vec<String> = copier
                    .destination()
                    .tags(&target)
                    .await?
                    .into_iter()
                    .filter(|t| !is_accessory_tag(t) && filters.tag(t) && !tags.contains(t))
                    .collect();
                gone.sort();
                for tag in gone {
                    sqlx::query(
                        "INSERT INTO replication_tasks (execution_id, src_resource, dst_resource, \
                         operation) VALUES ($1, $2, $3, 'deletion') ON CONFLICT DO NOTHING",
                    )
                    .bind(execution_id)
                    .bind(format!("{repo}:{tag}"))
                    .bind(format!("{target}:{tag}"))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for tag in tags {
                if filters.tag(&tag) {
                    sqlx::query(
                        "INSERT INTO replication_tasks (execution_id, src_resource, dst_resource) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(execution_id)
                    .bind(format!("{repo}:{tag}"))
                    .bind(format!("{target}:{tag}"))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn fail(e: ReplicationError) -> JobFailure {
    if e.is_transient() || matches!(e, ReplicationError::Database(_)) {
        JobFailure::Retry(e.to_string())
    } else {
        JobFailure::Fatal(e.to_string())
    }
}

#[async_trait::async_trait]
impl JobHandler for ReplicationJob {
    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<(), JobFailure> {
        let execution_id = ctx
            .execution_id
            .ok_or_else(|| JobFailure::Fatal("replication job without an execution".into()))?;
        let policy_id = payload
            .get("policy_id")
            .and_then(|p| p.as_i64())
            .ok_or_else(|| JobFailure::Fatal("replication job without a policy_id".into()))?;
        let pool = &ctx.pool;
        let policy = get_policy(pool, policy_id)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                JobFailure::Fatal(format!("replication policy {policy_id} was deleted"))
            })?;
        let missing = |id| JobFailure::Fatal(format!("registry {id} of the policy was deleted"));
        let src = Arc::new(
            self.registries
                .client(policy.src_registry_id)
                .await
                .map_err(fail)?
                .ok_or_else(|| missing(policy.src_registry_id))?,
        );
        let dst = Arc::new(
            self.registries
                .client(policy.dest_registry_id)
                .await
                .map_err(fail)?
                .ok_or_else(|| missing(policy.dest_registry_id))?,
        );
        let copier = Copier::new(
            src.clone(),
            dst,
            CopyOptions {
                override_tags: policy.override_tags,
                chunk_size: policy.copy_by_chunk.then_some(CHUNK_SIZE),
                speed_kib: policy.speed_kb.filter(|s| *s > 0).map(|s| s as u64),
                parallel_blobs: 3,
            },
        );
        if ctx.resumed {
            ctx.log("resuming: tasks that succeeded are not copied again")
                .await;
        }
        self.plan(pool, execution_id, &policy, &copier, &src)
            .await
            .map_err(fail)?;
        let tasks = list_tasks(pool, execution_id).await.map_err(fail)?;
        let (mut failed, mut first_error) = (0usize, None);
        for task in tasks.iter().filter(|t| t.status != "Succeed") {
            if ctx.stop_requested().await? {
                ctx.log("stopped on request").await;
                return Ok(());
            }
            sqlx::query(
                "UPDATE replication_tasks SET status = 'Running', attempts = attempts + 1, \
                 started_at = now(), error = '' WHERE id = $1",
            )
            .bind(task.id)
            .execute(pool)
            .await?;
            let (src_repo, tag) = task.src_resource.rsplit_once(':').unwrap_or_default();
            let (dst_repo, _) = task.dst_resource.rsplit_once(':').unwrap_or_default();
            let before = copier.report().bytes_copied;
            let result = if task.operation == "deletion" {
                copier
                    .delete_tag(dst_repo, tag)
                    .await
                    .map(|_| TagOutcome::Copied {
                        digest: String::new(),
                    })
            } else {
                copier.copy_tag(src_repo, dst_repo, tag).await
            };
            let bytes = (copier.report().bytes_copied - before) as i64;
            let (status, error) = match &result {
                Ok(TagOutcome::Kept { existing }) => (
                    "Succeed",
                    format!("kept: the destination tag points at {existing} and override is off"),
                ),
                Ok(_) => ("Succeed", String::new()),
                Err(e) => ("Failed", e.to_string()),
            };
            sqlx::query(
                "UPDATE replication_tasks SET status = $2, error = $3, bytes_copied = $4, \
                 finished_at = now() WHERE id = $1",
            )
            .bind(task.id)
            .bind(status)
            .bind(&error)
            .bind(bytes)
            .execute(pool)
            .await?;
            ctx.log(format!(
                "{} -> {}: {status} {error}",
                task.src_resource, task.dst_resource
            ))
            .await;
            if let Err(e) = result {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        let report = copier.report();
        let summary = serde_json::json!({
            "total": tasks.len(), "failed": failed, "bytes_copied": report.bytes_copied,
            "blobs_copied": report.blobs_copied, "blobs_mounted": report.blobs_mounted,
            "blobs_present": report.blobs_present,
        });
        if let Some(e) = first_error {
            let message = format!("{failed} of {} tasks failed; first error: {e}", tasks.len());
            return Err(if ctx.attempt < ctx.max_attempts && e.is_transient() {
                JobFailure::Retry(message)
            } else {
                JobFailure::Fatal(message)
            });
        }
        wharf_jobs::finish(
            pool,
            execution_id,
            wharf_jobs::Outcome::Success,
            Some(summary),
        )
        .await?;
        Ok(())
    }
}

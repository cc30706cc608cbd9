//! Replication policies, their executions (rows of wharf-jobs'
//! `job_executions` of kind [`JOB_KIND`]) with one task per artifact, and
//! the job that runs them on any worker sharing the queue.
//!
//! A policy's side that is `None` is this Wharf (Harbor's registry 0,
//! "Local"), reached through [`Registries::client_for`]. Its trigger is
//! kept in step with wharf-jobs: a `Scheduled` policy that is enabled owns
//! the schedule [`schedule_name`]; an `EventBased` one is started by
//! [`crate::events::on_registry_change`] for the one resource that changed.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use wharf_jobs::{EnqueueOptions, ExecutionStatus, JobContext, JobFailure, JobHandler, Trigger};

use crate::client::ReplicationError;
use crate::copy::{Copier, CopyOptions, TagOutcome, is_accessory_tag};
use crate::filter::{Filters, destination_repository};
use crate::registries::Registries;

/// The wharf-jobs kind of a replication execution.
pub const JOB_KIND: &str = "replication";

/// Upload chunk size when a policy asks for `copy_by_chunk`.
pub const CHUNK_SIZE: usize = 10 * 1024 * 1024;

/// Queue attempts of one execution (each resumes where the last stopped).
const MAX_ATTEMPTS: u16 = 5;

/// What starts a policy's executions (besides a manual start, always allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicyTrigger {
    #[default]
    Manual,
    /// Harbor's six-field cron (`0 0 2 * * *`).
    Scheduled(String),
    /// Pushes and deletions in this Wharf (source must be local).
    EventBased,
}

impl PolicyTrigger {
    /// Harbor's `trigger.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled(_) => "scheduled",
            Self::EventBased => "event_based",
        }
    }

    pub fn cron(&self) -> Option<&str> {
        match self {
            Self::Scheduled(c) => Some(c),
            _ => None,
        }
    }

    /// From Harbor's `trigger.type` and `trigger_settings.cron`.
    pub fn parse(kind: &str, cron: Option<&str>) -> Result<Self, ReplicationError> {
        match kind {
            "" | "manual" => Ok(Self::Manual),
            "event_based" => Ok(Self::EventBased),
            "scheduled" => match cron.map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => Ok(Self::Scheduled(c.to_owned())),
                None => Err(ReplicationError::Invalid(
                    "a scheduled trigger needs trigger_settings.cron".into(),
                )),
            },
            other => Err(ReplicationError::Invalid(format!(
                "unknown trigger type {other:?}: use manual, scheduled or event_based"
            ))),
        }
    }
}

/// A policy as created or updated.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    /// `None`: this Wharf.
    pub src_registry_id: Option<i64>,
    /// `None`: this Wharf.
    pub dest_registry_id: Option<i64>,
    pub dest_namespace: Option<String>,
    pub dest_namespace_replace_count: i32,
    /// Doublestar pattern on repository names (`library/**`).
    pub name_filter: Option<String>,
    /// The name filter keeps what does *not* match (`excludes`).
    pub name_excludes: bool,
    /// Doublestar pattern on tags (`v*`, `{1.0,2.0}`).
    pub tag_filter: Option<String>,
    pub tag_excludes: bool,
    /// Label names an artifact must all carry (local source only).
    pub label_include: Vec<String>,
    /// Label names an artifact must carry none of (local source only).
    pub label_exclude: Vec<String>,
    /// `image` (images and image indexes only) or `artifact`/`None` (all).
    pub resource_filter: Option<String>,
    pub trigger: PolicyTrigger,
    pub override_tags: bool,
    pub replicate_deletion: bool,
    /// KiB/s per blob stream.
    pub speed_kb: Option<i32>,
    pub copy_by_chunk: bool,
    pub enabled: bool,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub src_registry_id: Option<i64>,
    pub dest_registry_id: Option<i64>,
    pub dest_namespace: Option<String>,
    pub dest_namespace_replace_count: i32,
    pub name_filter: Option<String>,
    pub name_excludes: bool,
    pub tag_filter: Option<String>,
    pub tag_excludes: bool,
    pub label_include: Vec<String>,
    pub label_exclude: Vec<String>,
    pub resource_filter: Option<String>,
    pub trigger: PolicyTrigger,
    pub override_tags: bool,
    pub replicate_deletion: bool,
    pub speed_kb: Option<i32>,
    pub copy_by_chunk: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: i64,
    name: String,
    description: String,
    src_registry_id: Option<i64>,
    dest_registry_id: Option<i64>,
    dest_namespace: Option<String>,
    dest_namespace_replace_count: i32,
    name_filter: Option<String>,
    name_decoration: String,
    tag_filter: Option<String>,
    tag_decoration: String,
    label_include: Vec<String>,
    label_exclude: Vec<String>,
    resource_filter: Option<String>,
    trigger_type: String,
    trigger_cron: Option<String>,
    #[sqlx(rename = "override")]
    override_tags: bool,
    replicate_deletion: bool,
    speed_kb: Option<i32>,
    copy_by_chunk: bool,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PolicyRow> for Policy {
    fn from(r: PolicyRow) -> Self {
        let trigger = match (r.trigger_type.as_str(), r.trigger_cron) {
            ("scheduled", Some(cron)) => PolicyTrigger::Scheduled(cron),
            ("event_based", _) => PolicyTrigger::EventBased,
            _ => PolicyTrigger::Manual,
        };
        Policy {
            id: r.id,
            name: r.name,
            description: r.description,
            src_registry_id: r.src_registry_id,
            dest_registry_id: r.dest_registry_id,
            dest_namespace: r.dest_namespace,
            dest_namespace_replace_count: r.dest_namespace_replace_count,
            name_filter: r.name_filter,
            name_excludes: r.name_decoration == "excludes",
            tag_filter: r.tag_filter,
            tag_excludes: r.tag_decoration == "excludes",
            label_include: r.label_include,
            label_exclude: r.label_exclude,
            resource_filter: r.resource_filter,
            trigger,
            override_tags: r.override_tags,
            replicate_deletion: r.replicate_deletion,
            speed_kb: r.speed_kb,
            copy_by_chunk: r.copy_by_chunk,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Policy {
    /// The name, tag and resource filters (labels are looked up apart).
    pub fn filters(&self) -> Result<PolicyFilters, ReplicationError> {
        PolicyFilters::new(
            self.name_filter.as_deref(),
            self.name_excludes,
            self.tag_filter.as_deref(),
            self.tag_excludes,
        )
    }
}

/// A policy's name and tag filters with their decoration; an absent
/// filter keeps everything whatever its decoration.
#[derive(Debug, Clone)]
pub struct PolicyFilters {
    name: Option<(Filters, bool)>,
    tag: Option<(Filters, bool)>,
}

impl PolicyFilters {
    pub fn new(
        name: Option<&str>,
        name_excludes: bool,
        tag: Option<&str>,
        tag_excludes: bool,
    ) -> Result<Self, ReplicationError> {
        let name = name.filter(|p| !p.is_empty());
        let tag = tag.filter(|p| !p.is_empty());
        Ok(Self {
            name: name
                .map(|p| Filters::new(Some(p), None).map(|f| (f, name_excludes)))
                .transpose()?,
            tag: tag
                .map(|p| Filters::new(None, Some(p)).map(|f| (f, tag_excludes)))
                .transpose()?,
        })
    }

    pub fn repository(&self, name: &str) -> bool {
        self.name
            .as_ref()
            .is_none_or(|(f, excludes)| f.repository(name) != *excludes)
    }

    pub fn tag(&self, tag: &str) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|(f, excludes)| f.tag(tag) != *excludes)
    }

    /// Whether there is a tag filter (an event naming only a digest cannot
    /// be judged by one, and is not replicated).
    pub fn has_tag_filter(&self) -> bool {
        self.tag.is_some()
    }
}

/// One artifact of an execution.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    /// `repository:tag` or `repository@digest`.
    pub src_resource: String,
    pub dst_resource: String,
    /// `copy` or `deletion`.
    pub operation: String,
    /// `Pending`, `Running`, `Succeed` or `Failed`.
    pub status: String,
    pub resource_type: String,
    pub bytes_copied: i64,
    pub attempts: i32,
    pub error: String,
    /// What the worker said about this task, one line per event.
    pub log: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, description, src_registry_id, dest_registry_id, dest_namespace, \
     dest_namespace_replace_count, name_filter, name_decoration, tag_filter, tag_decoration, \
     label_include, label_exclude, resource_filter, trigger_type, trigger_cron, override, \
     replicate_deletion, speed_kb, copy_by_chunk, enabled, created_at, updated_at";

const TASK_COLUMNS: &str = "id, execution_id, src_resource, dst_resource, operation, status, \
     resource_type, bytes_copied, attempts, error, log, started_at, finished_at";

fn jobs_error(e: wharf_jobs::JobsError) -> ReplicationError {
    match e {
        wharf_jobs::JobsError::Database(e) => ReplicationError::Database(e),
        other => ReplicationError::Invalid(other.to_string()),
    }
}

/// The library's rules: Harbor's REST API adds [`require_one_local`].
pub fn validate(spec: &PolicySpec) -> Result<(), ReplicationError> {
    let invalid = |m: &str| Err(ReplicationError::Invalid(m.into()));
    if spec.name.trim().is_empty() {
        return invalid("a replication policy needs a name");
    }
    if spec.src_registry_id.is_none() && spec.dest_registry_id.is_none() {
        return invalid("a replication policy needs a remote registry on one side");
    }
    PolicyFilters::new(
        spec.name_filter.as_deref(),
        spec.name_excludes,
        spec.tag_filter.as_deref(),
        spec.tag_excludes,
    )?;
    if spec.speed_kb.is_some_and(|s| s < -1) {
        return invalid("speed must not be negative (-1 or 0: unlimited)");
    }
    if spec.dest_namespace_replace_count < -1 {
        return invalid("dest_namespace_replace_count must be -1 or more");
    }
    if let Some(r) = &spec.resource_filter
        && r != "image"
        && r != "artifact"
    {
        return Err(ReplicationError::Invalid(format!(
            "unknown resource filter {r:?}: use image or artifact"
        )));
    }
    let has_labels = !spec.label_include.is_empty() || !spec.label_exclude.is_empty();
    if has_labels && spec.src_registry_id.is_some() {
        return invalid("label filters need this Wharf as the source");
    }
    if spec
        .label_include
        .iter()
        .chain(&spec.label_exclude)
        .any(|l| l.trim().is_empty())
    {
        return invalid("label filter names must not be empty");
    }
    match &spec.trigger {
        PolicyTrigger::Scheduled(cron) => {
            wharf_jobs::validate_cron(cron)
                .map_err(|e| ReplicationError::Invalid(format!("invalid cron {cron:?}: {e}")))?;
        }
        PolicyTrigger::EventBased if spec.src_registry_id.is_some() => {
            return invalid(
                "an event-based trigger needs this Wharf as the source: \
                 it fires on pushes and deletions here",
            );
        }
        _ => {}
    }
    Ok(())
}

/// Harbor's rule for policies made through its API: exactly one side is
/// this Wharf (push-based: local → remote, pull-based: remote → local).
pub fn require_one_local(spec: &PolicySpec) -> Result<(), ReplicationError> {
    match (spec.src_registry_id, spec.dest_registry_id) {
        (Some(_), Some(_)) => Err(ReplicationError::Invalid(
            "either the source or the destination registry must be this Wharf (id 0)".into(),
        )),
        _ => Ok(()),
    }
}

fn write_error(e: sqlx::Error, name: &str) -> ReplicationError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ReplicationError::Invalid(format!(
            "a replication policy named {name:?} already exists"
        )),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            ReplicationError::Invalid("the source or destination registry does not exist".into())
        }
        _ => ReplicationError::Database(e),
    }
}

fn decoration(excludes: bool) -> &'static str {
    if excludes { "excludes" } else { "matches" }
}

/// Bind a spec's values as `$n` in [`COLUMNS`]' order (minus id and times).
const SPEC_COLUMNS: &str = "name, description, src_registry_id, dest_registry_id, \
     dest_namespace, dest_namespace_replace_count, name_filter, name_decoration, tag_filter, \
     tag_decoration, label_include, label_exclude, resource_filter, trigger_type, trigger_cron, \
     override, replicate_deletion, speed_kb, copy_by_chunk, enabled";

fn bind_spec<'q>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, PolicyRow, sqlx::postgres::PgArguments>,
    spec: &'q PolicySpec,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, PolicyRow, sqlx::postgres::PgArguments> {
    q.bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.src_registry_id)
        .bind(spec.dest_registry_id)
        .bind(&spec.dest_namespace)
        .bind(spec.dest_namespace_replace_count)
        .bind(spec.name_filter.as_deref().filter(|p| !p.is_empty()))
        .bind(decoration(spec.name_excludes))
        .bind(spec.tag_filter.as_deref().filter(|p| !p.is_empty()))
        .bind(decoration(spec.tag_excludes))
        .bind(&spec.label_include)
        .bind(&spec.label_exclude)
        .bind(&spec.resource_filter)
        .bind(spec.trigger.type_name())
        .bind(spec.trigger.cron())
        .bind(spec.override_tags)
        .bind(spec.replicate_deletion)
        .bind(spec.speed_kb)
        .bind(spec.copy_by_chunk)
        .bind(spec.enabled)
}

pub async fn create_policy(pool: &PgPool, spec: &PolicySpec) -> Result<Policy, ReplicationError> {
    validate(spec)?;
    let sql = format!(
        "INSERT INTO replication_policies ({SPEC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING {COLUMNS}"
    );
    let mut tx = pool.begin().await?;
    let policy: Policy = bind_spec(sqlx::query_as(sqlx::AssertSqlSafe(sql)), spec)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| write_error(e, &spec.name))?
        .into();
    sync_trigger(&mut tx, &policy).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Replace policy `id`'s settings (and its schedule with them); `None`
/// when there is no such policy.
pub async fn update_policy(
    pool: &PgPool,
    id: i64,
    spec: &PolicySpec,
) -> Result<Option<Policy>, ReplicationError> {
    validate(spec)?;
    let sets: Vec<String> = SPEC_COLUMNS
        .split(", ")
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE replication_policies SET {}, updated_at = now() WHERE id = $21 RETURNING {COLUMNS}",
        sets.join(", ")
    );
    let mut tx = pool.begin().await?;
    let Some(row) = bind_spec(sqlx::query_as(sqlx::AssertSqlSafe(sql)), spec)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| write_error(e, &spec.name))?
    else {
        return Ok(None);
    };
    let policy = Policy::from(row);
    sync_trigger(&mut tx, &policy).await?;
    tx.commit().await?;
    Ok(Some(policy))
}

/// An enabled scheduled policy has its schedule; any other has none.
async fn sync_trigger(conn: &mut PgConnection, policy: &Policy) -> Result<(), ReplicationError> {
    let name = schedule_name(policy.id);
    match policy.trigger.cron().filter(|_| policy.enabled) {
        Some(cron) => {
            wharf_jobs::set_schedule(
                conn,
                &name,
                JOB_KIND,
                cron,
                json!({ "policy_id": policy.id }),
            )
            .await
            .map_err(jobs_error)?;
        }
        None => {
            wharf_jobs::delete_schedule(&mut *conn, &name)
                .await
                .map_err(jobs_error)?;
        }
    }
    Ok(())
}

pub async fn get_policy(pool: &PgPool, id: i64) -> Result<Option<Policy>, ReplicationError> {
    let sql = format!("SELECT {COLUMNS} FROM replication_policies WHERE id = $1");
    Ok(sqlx::query_as::<_, PolicyRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(Policy::from))
}

pub async fn get_policy_by_name(
    pool: &PgPool,
    name: &str,
) -> Result<Option<Policy>, ReplicationError> {
    let sql = format!("SELECT {COLUMNS} FROM replication_policies WHERE name = $1");
    Ok(sqlx::query_as::<_, PolicyRow>(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(pool)
        .await?
        .map(Policy::from))
}

pub async fn list_policies(pool: &PgPool) -> Result<Vec<Policy>, ReplicationError> {
    let sql = format!("SELECT {COLUMNS} FROM replication_policies ORDER BY id");
    Ok(sqlx::query_as::<_, PolicyRow>(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(Policy::from)
        .collect())
}

/// How many policies use registry `registry_id` on either side (Harbor
/// refuses to delete a registry that is in use).
pub async fn policies_using_registry(
    pool: &PgPool,
    registry_id: i64,
) -> Result<i64, ReplicationError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM replication_policies \
         WHERE src_registry_id = $1 OR dest_registry_id = $1",
    )
    .bind(registry_id)
    .fetch_one(pool)
    .await?)
}

/// How many executions of the policy are waiting or running (Harbor
/// refuses to delete a policy while one is).
pub async fn active_executions(pool: &PgPool, policy_id: i64) -> Result<i64, ReplicationError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM job_executions WHERE kind = $1 \
         AND (parameters ->> 'policy_id')::bigint = $2 \
         AND status IN ('Pending', 'Running', 'Stopping')",
    )
    .bind(JOB_KIND)
    .bind(policy_id)
    .fetch_one(pool)
    .await?)
}

pub async fn delete_policy(pool: &PgPool, id: i64) -> Result<bool, ReplicationError> {
    let mut tx = pool.begin().await?;
    wharf_jobs::delete_schedule(&mut *tx, &schedule_name(id))
        .await
        .map_err(jobs_error)?;
    let done = sqlx::query("DELETE FROM replication_policies WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// One resource an event-triggered execution is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventResource {
    pub repository: String,
    /// A tag, or a digest (`sha256:...`).
    pub reference: String,
    pub deleted: bool,
}

/// Record an execution and queue its job on `conn` (the caller's
/// transaction, if it has one).
pub(crate) async fn enqueue_execution(
    conn: &mut PgConnection,
    policy_id: i64,
    trigger: Trigger,
    resource: Option<&EventResource>,
) -> Result<i64, ReplicationError> {
    let mut params = json!({ "policy_id": policy_id });
    if let Some(r) = resource {
        params["resource"] = json!(r);
    }
    let id = wharf_jobs::create_execution(&mut *conn, JOB_KIND, trigger, params.clone(), None)
        .await
        .map_err(jobs_error)?;
    wharf_jobs::enqueue(
        conn,
        JOB_KIND,
        wharf_jobs::with_execution(params, id),
        EnqueueOptions {
            max_attempts: Some(MAX_ATTEMPTS),
            ..Default::default()
        },
    )
    .await
    .map_err(jobs_error)?;
    Ok(id)
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
    let mut tx = pool.begin().await?;
    let id = enqueue_execution(&mut tx, policy_id, trigger, None).await?;
    tx.commit().await?;
    Ok(id)
}

/// Ask execution `id` to stop (a pending one stops at once, a running one
/// after its current task). `Ok(None)` when it is not a replication
/// execution; `Ok(Some(false))` when it had already finished.
pub async fn stop_execution(pool: &PgPool, id: i64) -> Result<Option<bool>, ReplicationError> {
    if get_execution(pool, id).await?.is_none() {
        return Ok(None);
    }
    wharf_jobs::request_stop(pool, id)
        .await
        .map(Some)
        .map_err(jobs_error)
}

/// The wharf-jobs schedule name of a policy's cron trigger.
pub fn schedule_name(policy_id: i64) -> String {
    format!("replication-policy-{policy_id}")
}

/// Give policy `policy_id` a scheduled trigger (six-field cron, as Harbor):
/// every tick creates an execution with trigger `Schedule`, once in the
/// cluster. `None` removes it. Policies created or updated with a
/// [`PolicyTrigger::Scheduled`] get theirs without this.
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
                json!({ "policy_id": policy_id }),
            )
            .await
            .map_err(jobs_error)?;
        }
        None => {
            wharf_jobs::delete_schedule(pool, &name)
                .await
                .map_err(jobs_error)?;
        }
    }
    Ok(())
}

/// An execution with its tasks counted (Harbor's `ReplicationExecution`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionSummary {
    pub id: i64,
    pub policy_id: i64,
    pub status: ExecutionStatus,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The error of a failed execution, from its result.
    pub status_text: String,
    pub total: i64,
    pub failed: i64,
    pub succeed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

/// Which executions [`list_executions`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub policy_id: Option<i64>,
    /// Any of these statuses; empty: every status.
    pub statuses: Vec<ExecutionStatus>,
    pub trigger: Option<Trigger>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

const EXECUTION_SELECT: &str = "SELECT e.id, (e.parameters ->> 'policy_id')::bigint AS policy_id, \
     e.status, e.\"trigger\", e.created_at, e.started_at, e.finished_at, e.result, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id) AS total, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id \
        AND t.status = 'Failed') AS failed, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id \
        AND t.status = 'Succeed') AS succeed, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id \
        AND t.status IN ('Pending', 'Running')) AS unfinished \
     FROM job_executions e";

#[derive(sqlx::FromRow)]
struct ExecutionRow {
    id: i64,
    policy_id: Option<i64>,
    status: String,
    trigger: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    result: Option<Value>,
    total: i64,
    failed: i64,
    succeed: i64,
    unfinished: i64,
}

impl From<ExecutionRow> for ExecutionSummary {
    fn from(r: ExecutionRow) -> Self {
        let status = ExecutionStatus::from_name(&r.status).unwrap_or(ExecutionStatus::Pending);
        // Tasks left over when an execution stopped were stopped with it.
        let (in_progress, stopped) = if status == ExecutionStatus::Stopped
            || (status.is_final() && status != ExecutionStatus::Success)
        {
            (0, r.unfinished)
        } else {
            (r.unfinished, 0)
        };
        let status_text = r
            .result
            .as_ref()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        ExecutionSummary {
            id: r.id,
            policy_id: r.policy_id.unwrap_or_default(),
            status,
            trigger: match r.trigger.as_str() {
                "Schedule" => Trigger::Schedule,
                "Event" => Trigger::Event,
                _ => Trigger::Manual,
            },
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status_text,
            total: r.total,
            failed: r.failed,
            succeed: r.succeed,
            in_progress,
            stopped,
        }
    }
}

/// One replication execution with its task counts.
pub async fn get_execution(
    pool: &PgPool,
    id: i64,
) -> Result<Option<ExecutionSummary>, ReplicationError> {
    let sql = format!("{EXECUTION_SELECT} WHERE e.id = $1 AND e.kind = $2");
    Ok(sqlx::query_as::<_, ExecutionRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(JOB_KIND)
        .fetch_optional(pool)
        .await?
        .map(ExecutionSummary::from))
}

/// One page of replication executions, newest first, and how many match.
pub async fn list_executions(
    pool: &PgPool,
    filter: &ExecutionFilter,
) -> Result<(Vec<ExecutionSummary>, i64), ReplicationError> {
    let size = i64::from(filter.page_size.clamp(1, 100));
    let offset = (i64::from(filter.page.max(1)) - 1) * size;
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let condition = "e.kind = $1 \
         AND ($2::bigint IS NULL OR (e.parameters ->> 'policy_id')::bigint = $2) \
         AND (cardinality($3::text[]) = 0 OR e.status = ANY($3)) \
         AND ($4::text IS NULL OR e.\"trigger\" = $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM job_executions e WHERE {condition}"
    )))
    .bind(JOB_KIND)
    .bind(filter.policy_id)
    .bind(&statuses)
    .bind(filter.trigger.map(Trigger::as_str))
    .fetch_one(pool)
    .await?;
    let sql = format!("{EXECUTION_SELECT} WHERE {condition} ORDER BY e.id DESC LIMIT $5 OFFSET $6");
    let items = sqlx::query_as::<_, ExecutionRow>(sqlx::AssertSqlSafe(sql))
        .bind(JOB_KIND)
        .bind(filter.policy_id)
        .bind(&statuses)
        .bind(filter.trigger.map(Trigger::as_str))
        .bind(size)
        .bind(offset)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(ExecutionSummary::from)
        .collect();
    Ok((items, total))
}

pub async fn list_tasks(pool: &PgPool, execution_id: i64) -> Result<Vec<Task>, ReplicationError> {
    let sql =
        format!("SELECT {TASK_COLUMNS} FROM replication_tasks WHERE execution_id = $1 ORDER BY id");
    Ok(sqlx::query_as::<_, Task>(sqlx::AssertSqlSafe(sql))
        .bind(execution_id)
        .fetch_all(pool)
        .await?)
}

pub async fn get_task(
    pool: &PgPool,
    execution_id: i64,
    task_id: i64,
) -> Result<Option<Task>, ReplicationError> {
    let sql =
        format!("SELECT {TASK_COLUMNS} FROM replication_tasks WHERE execution_id = $1 AND id = $2");
    Ok(sqlx::query_as::<_, Task>(sqlx::AssertSqlSafe(sql))
        .bind(execution_id)
        .bind(task_id)
        .fetch_optional(pool)
        .await?)
}

/// A task's log as Harbor serves it: plain text, what the worker said
/// about the task, then its last error if it failed.
pub fn task_log(task: &Task) -> String {
    let mut log = task.log.clone();
    if task.status == "Failed" && !task.error.is_empty() && !log.contains(&task.error) {
        log.push_str(&format!("error: {}\n", task.error));
    }
    log
}

/// `repo:tag` or `repo@digest` → (repo, reference).
fn split_resource(resource: &str) -> (&str, &str) {
    resource
        .split_once('@')
        .or_else(|| resource.rsplit_once(':'))
        .unwrap_or((resource, ""))
}

fn join_resource(repo: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("{repo}@{reference}")
    } else {
        format!("{repo}:{reference}")
    }
}

/// Called with the bytes each task copied (for a metric).
pub type BytesObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// The job: plan the execution's tasks once (source repositories and
/// tags through the policy's filters, or the one resource of an event),
/// then copy every task not yet succeeded. Failed tasks make the attempt
/// fail so the queue retries them with backoff; the last attempt ends with
/// the first task error.
#[derive(Clone)]
pub struct ReplicationJob {
    registries: Registries,
    bytes_observer: Option<BytesObserver>,
}

impl ReplicationJob {
    pub fn new(registries: Registries) -> Arc<Self> {
        Arc::new(Self {
            registries,
            bytes_observer: None,
        })
    }

    /// Call `observer` with the bytes of blobs each finished task uploaded
    /// (blobs mounted or already present count nothing), e.g. to feed
    /// `wharf_replication_bytes_total`:
    /// `ReplicationJob::new(registries).with_bytes_observer(Arc::new(|n| counter.inc_by(n)))`.
    pub fn with_bytes_observer(self: Arc<Self>, observer: BytesObserver) -> Arc<Self> {
        let mut job = Arc::unwrap_or_clone(self);
        job.bytes_observer = Some(observer);
        Arc::new(job)
    }

    async fn plan(
        &self,
        pool: &PgPool,
        execution_id: i64,
        policy: &Policy,
        event: Option<&EventResource>,
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
        let filters = policy.filters()?;
        let mut planner = Planner {
            tasks: Vec::new(),
            policy,
        };
        if let Some(event) = event {
            // The trigger judged the name and tag filters when it fired.
            planner.event(pool, event, src).await?;
        } else {
            // Sorted, so the tasks run in an order that does not depend on the server.
            let mut repos = src.catalog().await?;
            repos.sort();
            for repo in repos.iter().filter(|r| filters.repository(r)) {
                planner
                    .repository(pool, repo, &filters, copier, src)
                    .await?;
            }
        }
        let mut tx = pool.begin().await?;
        for (src_resource, dst_resource, operation, resource_type) in planner.tasks {
            sqlx::query(
                "INSERT INTO replication_tasks (execution_id, src_resource, dst_resource, \
                 operation, resource_type) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(execution_id)
            .bind(src_resource)
            .bind(dst_resource)
            .bind(operation)
            .bind(resource_type)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Collects the tasks of one execution.
struct Planner<'a> {
    /// (source, destination, operation, resource type)
    tasks: Vec<(String, String, &'static str, String)>,
    policy: &'a Policy,
}

impl Planner<'_> {
    fn target(&self, repo: &str) -> String {
        destination_repository(
            repo,
            self.policy.dest_namespace.as_deref(),
            self.policy.dest_namespace_replace_count,
        )
    }

    async fn repository(
        &mut self,
        pool: &PgPool,
        repo: &str,
        filters: &PolicyFilters,
        copier: &Copier,
        src: &crate::RegistryClient,
    ) -> Result<(), ReplicationError> {
        let target = self.target(repo);
        let mut tags = copier.artifact_tags(repo).await?;
        tags.sort();
        if self.policy.replicate_deletion {
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
                self.tasks.push((
                    format!("{repo}:{tag}"),
                    format!("{target}:{tag}"),
                    "deletion",
                    "artifact".into(),
                ));
            }
        }
        let labelled = labelled_tags(pool, self.policy, repo).await?;
        for tag in tags {
            if !filters.tag(&tag) || labelled.as_ref().is_some_and(|l| !l.contains(&tag)) {
                continue;
            }
            let Some(kind) = resource_kind(self.policy, src, repo, &tag).await? else {
                continue;
            };
            self.tasks.push((
                format!("{repo}:{tag}"),
                format!("{target}:{tag}"),
                "copy",
                kind,
            ));
        }
        Ok(())
    }

    async fn event(
        &mut self,
        pool: &PgPool,
        event: &EventResource,
        src: &crate::RegistryClient,
    ) -> Result<(), ReplicationError> {
        let repo = event.repository.as_str();
        let target = self.target(repo);
        let source = join_resource(repo, &event.reference);
        let dest = join_resource(&target, &event.reference);
        if event.deleted {
            if self.policy.replicate_deletion {
                self.tasks
                    .push((source, dest, "deletion", "artifact".into()));
            }
            return Ok(());
        }
        // Labels and media types are judged now, not when the event fired:
        // an artifact relabelled or replaced since is seen as it is.
        let labelled = labelled_tags(pool, self.policy, repo).await?;
        if labelled
            .as_ref()
            .is_some_and(|l| !l.contains(&event.reference))
        {
            return Ok(());
        }
        if src.head_manifest(repo, &event.reference).await?.is_none() {
            // Gone again before the job ran: nothing to copy.
            return Ok(());
        }
        if let Some(kind) = resource_kind(self.policy, src, repo, &event.reference).await? {
            self.tasks.push((source, dest, "copy", kind));
        }
        Ok(())
    }
}

/// The tags of local `repo` that pass the policy's label filters; `None`
/// when it has none (every tag passes). Labels are this Wharf's, so they
/// are read from its tables.
async fn labelled_tags(
    pool: &PgPool,
    policy: &Policy,
    repo: &str,
) -> Result<Option<HashSet<String>>, ReplicationError> {
    if policy.label_include.is_empty() && policy.label_exclude.is_empty() {
        return Ok(None);
    }
    let tags: Vec<String> = sqlx::query_scalar(
        "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id \
         WHERE r.name = $1 \
           AND (SELECT count(DISTINCT l.name) FROM artifact_labels al \
                JOIN labels l ON l.id = al.label_id \
                WHERE al.manifest_id = t.manifest_id AND l.name = ANY($2)) = cardinality($2) \
           AND NOT EXISTS (SELECT 1 FROM artifact_labels al JOIN labels l ON l.id = al.label_id \
                WHERE al.manifest_id = t.manifest_id AND l.name = ANY($3))",
    )
    .bind(repo)
    .bind(&policy.label_include)
    .bind(&policy.label_exclude)
    .fetch_all(pool)
    .await?;
    Ok(Some(tags.into_iter().collect()))
}

const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// `Some("image")` or `Some("artifact")` for what the task copies, `None`
/// when the policy's resource filter leaves it out. Only a filter on
/// `image` needs the manifest.
async fn resource_kind(
    policy: &Policy,
    src: &crate::RegistryClient,
    repo: &str,
    reference: &str,
) -> Result<Option<String>, ReplicationError> {
    if policy.resource_filter.as_deref() != Some("image") {
        return Ok(Some("artifact".into()));
    }
    let Some(manifest) = src.get_manifest(repo, reference).await? else {
        return Ok(None);
    };
    let doc = manifest.json()?;
    let is_index = doc.get("manifests").is_some();
    let config = doc
        .pointer("/config/mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let image = is_index || IMAGE_CONFIGS.contains(&config);
    Ok(image.then(|| "image".into()))
}

fn fail(e: ReplicationError) -> JobFailure {
    if e.is_transient() || matches!(e, ReplicationError::Database(_)) {
        JobFailure::Retry(e.to_string())
    } else {
        JobFailure::Fatal(e.to_string())
    }
}

async fn task_note(pool: &PgPool, task_id: i64, line: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE replication_tasks SET log = log || $2 WHERE id = $1")
        .bind(task_id)
        .bind(format!("{} {line}\n", Utc::now().to_rfc3339()))
        .execute(pool)
        .await
        .map(|_| ())
}

#[async_trait::async_trait]
impl JobHandler for ReplicationJob {
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<(), JobFailure> {
        let execution_id = ctx
            .execution_id
            .ok_or_else(|| JobFailure::Fatal("replication job without an execution".into()))?;
        let policy_id = payload
            .get("policy_id")
            .and_then(|p| p.as_i64())
            .ok_or_else(|| JobFailure::Fatal("replication job without a policy_id".into()))?;
        let event: Option<EventResource> = payload
            .get("resource")
            .map(|r| serde_json::from_value(r.clone()))
            .transpose()
            .map_err(|e| JobFailure::Fatal(format!("bad event resource: {e}")))?;
        let pool = &ctx.pool;
        let policy = get_policy(pool, policy_id)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                JobFailure::Fatal(format!("replication policy {policy_id} was deleted"))
            })?;
        let side = |id: Option<i64>| {
            let registries = &self.registries;
            async move {
                registries
                    .client_for(id)
                    .await
                    .map_err(fail)?
                    .map(Arc::new)
                    .ok_or_else(|| {
                        JobFailure::Fatal(format!(
                            "registry {} of the policy was deleted",
                            id.unwrap_or_default()
                        ))
                    })
            }
        };
        let src = side(policy.src_registry_id).await?;
        let dst = side(policy.dest_registry_id).await?;
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
        self.plan(pool, execution_id, &policy, event.as_ref(), &copier, &src)
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
            task_note(
                pool,
                task.id,
                &format!(
                    "attempt {}: {} {} -> {}",
                    task.attempts + 1,
                    task.operation,
                    task.src_resource,
                    task.dst_resource
                ),
            )
            .await?;
            let (src_repo, reference) = split_resource(&task.src_resource);
            let (dst_repo, _) = split_resource(&task.dst_resource);
            let before = copier.report().bytes_copied;
            let result = if task.operation == "deletion" {
                copier
                    .delete_tag(dst_repo, reference)
                    .await
                    .map(|_| TagOutcome::Copied {
                        digest: String::new(),
                    })
            } else {
                copier.copy_tag(src_repo, dst_repo, reference).await
            };
            let bytes = copier.report().bytes_copied - before;
            if let Some(observe) = &self.bytes_observer
                && bytes > 0
            {
                observe(bytes);
            }
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
            .bind(bytes as i64)
            .execute(pool)
            .await?;
            task_note(
                pool,
                task.id,
                &format!("{status}: {bytes} bytes copied {error}"),
            )
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
        let summary = json!({
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_split_on_tag_or_digest() {
        assert_eq!(split_resource("a/b:v1"), ("a/b", "v1"));
        assert_eq!(split_resource("a/b@sha256:ab"), ("a/b", "sha256:ab"));
        assert_eq!(join_resource("a/b", "sha256:ab"), "a/b@sha256:ab");
        assert_eq!(join_resource("a/b", "v1"), "a/b:v1");
    }

    #[test]
    fn decorated_filters() {
        let f = PolicyFilters::new(Some("library/**"), true, Some("v*"), false).unwrap();
        assert!(!f.repository("library/app") && f.repository("other/app"));
        assert!(f.tag("v1") && !f.tag("latest"));
        let none = PolicyFilters::new(None, true, Some(""), true).unwrap();
        assert!(none.repository("x") && none.tag("y") && !none.has_tag_filter());
    }

    #[test]
    fn rest_rules() {
        let spec = |src, dst, trigger| PolicySpec {
            name: "p".into(),
            src_registry_id: src,
            dest_registry_id: dst,
            trigger,
            ..Default::default()
        };
        assert!(validate(&spec(None, None, PolicyTrigger::Manual)).is_err());
        assert!(validate(&spec(Some(1), Some(2), PolicyTrigger::Manual)).is_ok());
        assert!(require_one_local(&spec(Some(1), Some(2), PolicyTrigger::Manual)).is_err());
        assert!(require_one_local(&spec(None, Some(2), PolicyTrigger::Manual)).is_ok());
        assert!(validate(&spec(Some(1), None, PolicyTrigger::EventBased)).is_err());
        assert!(validate(&spec(None, Some(1), PolicyTrigger::EventBased)).is_ok());
        assert!(
            validate(&spec(
                None,
                Some(1),
                PolicyTrigger::Scheduled("nope".into())
            ))
            .is_err()
        );
        assert!(
            validate(&spec(
                None,
                Some(1),
                PolicyTrigger::Scheduled("0 0 2 * * *".into())
            ))
            .is_ok()
        );
        let mut labels = spec(Some(1), None, PolicyTrigger::Manual);
        labels.label_include = vec!["prod".into()];
        assert!(validate(&labels).is_err());
    }
}

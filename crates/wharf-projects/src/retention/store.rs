//! Retention's rows: policies (`retention_policies`, with the project's
//! `retention_id` metadata and the policy's schedule kept in step in the
//! same transaction), the executions of a policy (`job_executions` rows of
//! kind [`KIND`] whose parameters name it) and their per-repository tasks
//! (`retention_tasks`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgExecutor};

use super::policy::{PolicySpec, stored_rules};
use super::{KIND, METADATA_KEY, schedule_name};
use crate::error::{Error, Result};
use crate::{Listing, Page};

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its id (Harbor's retention id).
    pub id: i64,
    /// Its rules, schedule and project.
    pub spec: PolicySpec,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

type PolicyRow = (
    i64,
    i64,
    Value,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn from_row((id, project_id, rules, cron, created_at, updated_at): PolicyRow) -> Result<Policy> {
    Ok(Policy {
        id,
        spec: PolicySpec {
            project_id,
            rules: stored_rules(id, &rules)?,
            cron,
        },
        created_at,
        updated_at,
    })
}

const POLICY_COLUMNS: &str = "id, project_id, rules, cron, created_at, updated_at";

/// The payload of each run of policy `id` (what its executions' parameters
/// say; the schedule's payload also names the project, so scheduled runs
/// are recorded against it).
pub fn run_parameters(policy_id: i64, project_id: i64, dry_run: bool) -> Value {
    json!({"policy_id": policy_id, "project_id": project_id, "dry_run": dry_run})
}

/// Set, replace or remove the policy's schedule to match its cron.
async fn sync_schedule(conn: &mut PgConnection, id: i64, spec: &PolicySpec) -> Result<()> {
    let name = schedule_name(id);
    match &spec.cron {
        Some(cron) => {
            wharf_jobs::set_schedule(
                conn,
                &name,
                KIND,
                cron,
                run_parameters(id, spec.project_id, false),
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

fn jobs_error(e: wharf_jobs::JobsError) -> Error {
    use wharf_jobs::JobsError;
    match e {
        JobsError::InvalidCron { .. } | JobsError::InvalidSchedule(_) => {
            Error::Invalid(e.to_string())
        }
        JobsError::Database(cause) => Error::Database(cause),
        other => Error::Internal(other.to_string()),
    }
}

/// Create the policy of a project, its `retention_id` metadata and its
/// schedule, in the caller's transaction. [`Error::Invalid`] when the
/// project already has one; [`Error::NotFound`] when the project is gone.
pub async fn create_policy(conn: &mut PgConnection, spec: &PolicySpec) -> Result<Policy> {
    // The project row lock orders concurrent creates for one project, so
    // the second sees the first's policy instead of a unique violation.
    sqlx::query("SELECT id FROM projects WHERE id = $1 AND NOT deleted FOR UPDATE")
        .bind(spec.project_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(existing) = policy_id_of_project(&mut *conn, spec.project_id).await? {
        // Harbor answers this with 400, not 409.
        return Err(Error::Invalid(format!(
            "project {} already has retention policy {existing}",
            spec.project_id
        )));
    }
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO retention_policies (project_id, rules, cron) VALUES ($1, $2, $3)
         RETURNING {POLICY_COLUMNS}"
    )))
    .bind(spec.project_id)
    .bind(spec.rules_json())
    .bind(&spec.cron)
    .fetch_one(&mut *conn)
    .await?;
    let policy = from_row(row)?;
    sqlx::query(
        "INSERT INTO project_metadata (project_id, name, value) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(spec.project_id)
    .bind(METADATA_KEY)
    .bind(policy.id.to_string())
    .execute(&mut *conn)
    .await?;
    sync_schedule(conn, policy.id, &policy.spec).await?;
    Ok(policy)
}

/// Replace a policy's rules and schedule (its project stays), in the
/// caller's transaction.
pub async fn update_policy(conn: &mut PgConnection, id: i64, spec: &PolicySpec) -> Result<Policy> {
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE retention_policies SET rules = $2, cron = $3, updated_at = now()
          WHERE id = $1 AND project_id = $4
         RETURNING {POLICY_COLUMNS}"
    )))
    .bind(id)
    .bind(spec.rules_json())
    .bind(&spec.cron)
    .bind(spec.project_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let policy = from_row(row)?;
    sync_schedule(conn, id, &policy.spec).await?;
    Ok(policy)
}

/// Delete a policy, its schedule and its project's `retention_id`, in the
/// caller's transaction. Its run history stays (as executions of a policy
/// that no longer exists, which nothing lists).
pub async fn delete_policy(conn: &mut PgConnection, id: i64) -> Result<()> {
    let project: Option<i64> =
        sqlx::query_scalar("DELETE FROM retention_policies WHERE id = $1 RETURNING project_id")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let project = project.ok_or(Error::NotFound)?;
    sqlx::query("DELETE FROM project_metadata WHERE project_id = $1 AND name = $2 AND value = $3")
        .bind(project)
        .bind(METADATA_KEY)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    wharf_jobs::delete_schedule(&mut *conn, &schedule_name(id))
        .await
        .map_err(jobs_error)?;
    Ok(())
}

/// One policy by id.
pub async fn get_policy(db: impl PgExecutor<'_>, id: i64) -> Result<Policy> {
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {POLICY_COLUMNS} FROM retention_policies WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)?;
    from_row(row)
}

/// The id of a project's policy, if it has one.
pub async fn policy_id_of_project(db: impl PgExecutor<'_>, project_id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM retention_policies WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(db)
            .await?,
    )
}

// ---------------------------------------------------------------------------
// Executions.

/// Whether an execution is a run of this policy.
pub fn is_run_of(execution: &wharf_jobs::Execution, policy_id: i64) -> bool {
    execution.kind == KIND && run_policy_id(&execution.parameters) == Some(policy_id)
}

/// The policy a run's parameters name.
pub fn run_policy_id(parameters: &Value) -> Option<i64> {
    parameters.get("policy_id").and_then(Value::as_i64)
}

/// Whether a run's parameters ask for a dry run.
pub fn run_is_dry(parameters: &Value) -> bool {
    parameters
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Queue a manual run of `policy` (a dry one deletes nothing) in the
/// caller's transaction, as `POST /retentions/{id}/executions` does; the
/// new execution's id. Runs of one policy go one after another.
pub async fn start_run(conn: &mut PgConnection, policy: &Policy, dry_run: bool) -> Result<i64> {
    let parameters = run_parameters(policy.id, policy.spec.project_id, dry_run);
    let eid = wharf_jobs::create_execution(
        &mut *conn,
        KIND,
        wharf_jobs::Trigger::Manual,
        parameters.clone(),
        Some(policy.spec.project_id),
    )
    .await
    .map_err(jobs_error)?;
    wharf_jobs::enqueue(
        conn,
        KIND,
        wharf_jobs::with_execution(parameters, eid),
        wharf_jobs::EnqueueOptions {
            queue_name: Some(schedule_name(policy.id)),
            max_attempts: Some(super::job::MAX_ATTEMPTS),
            ..wharf_jobs::EnqueueOptions::default()
        },
    )
    .await
    .map_err(jobs_error)?;
    Ok(eid)
}

/// The runs of a policy, newest first, one page of them.
pub async fn list_runs(
    pool: &sqlx::PgPool,
    policy_id: i64,
    page: Page,
) -> Result<Listing<wharf_jobs::Execution>> {
    let (limit, offset) = page.limit_offset();
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_executions WHERE kind = $1 AND parameters->>'policy_id' = $2",
    )
    .bind(KIND)
    .bind(policy_id.to_string())
    .fetch_one(pool)
    .await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM job_executions WHERE kind = $1 AND parameters->>'policy_id' = $2
          ORDER BY id DESC LIMIT $3 OFFSET $4",
    )
    .bind(KIND)
    .bind(policy_id.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(execution) = wharf_jobs::get_execution(pool, id)
            .await
            .map_err(jobs_error)?
        {
            items.push(execution);
        }
    }
    Ok(Listing { items, total })
}

// ---------------------------------------------------------------------------
// Tasks.

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Not started.
    Pending,
    /// Being evaluated or deleted.
    Running,
    /// Done.
    Success,
    /// Failed part-way.
    Error,
    /// The run was stopped before it finished this repository.
    Stopped,
}

impl TaskStatus {
    /// Harbor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "Pending",
            TaskStatus::Running => "Running",
            TaskStatus::Success => "Success",
            TaskStatus::Error => "Error",
            TaskStatus::Stopped => "Stopped",
        }
    }

    fn parse(s: &str) -> TaskStatus {
        match s {
            "Running" => TaskStatus::Running,
            "Success" => TaskStatus::Success,
            "Error" => TaskStatus::Error,
            "Stopped" => TaskStatus::Stopped,
            _ => TaskStatus::Pending,
        }
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Error | TaskStatus::Stopped
        )
    }
}

/// One repository of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task id.
    pub id: i64,
    /// The run (execution) it belongs to.
    pub execution_id: i64,
    /// The repository's full name.
    pub repository: String,
    /// Where it is.
    pub status: TaskStatus,
    /// Artifacts considered.
    pub total: i32,
    /// Of those, how many stay.
    pub retained: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

type TaskRow = (
    i64,
    i64,
    String,
    String,
    i32,
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn task_from_row(r: TaskRow) -> Task {
    Task {
        id: r.0,
        execution_id: r.1,
        repository: r.2,
        status: TaskStatus::parse(&r.3),
        total: r.4,
        retained: r.5,
        created_at: r.6,
        started_at: r.7,
        finished_at: r.8,
    }
}

const TASK_COLUMNS: &str =
    "id, execution_id, repository, status, total, retained, created_at, started_at, finished_at";

/// Make sure the run has a task for each of these repositories (a resumed
/// run keeps the ones it has); returns every task of the run, oldest first.
pub async fn ensure_tasks(
    pool: &sqlx::PgPool,
    execution_id: i64,
    repositories: &[String],
) -> Result<Vec<Task>> {
    sqlx::query(
        "INSERT INTO retention_tasks (execution_id, repository)
         SELECT $1, r FROM UNNEST($2::text[]) AS r
         ON CONFLICT (execution_id, repository) DO NOTHING",
    )
    .bind(execution_id)
    .bind(repositories)
    .execute(pool)
    .await?;
    let rows: Vec<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = $1 ORDER BY id"
    )))
    .bind(execution_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(task_from_row).collect())
}

/// Mark a task running and clear what an earlier attempt logged.
pub async fn start_task(db: impl PgExecutor<'_>, task_id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE retention_tasks SET status = 'Running', log = '', total = 0, retained = 0,
                started_at = now(), finished_at = NULL
          WHERE id = $1",
    )
    .bind(task_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Record a task's end and its counts.
pub async fn finish_task(
    db: impl PgExecutor<'_>,
    task_id: i64,
    status: TaskStatus,
    total: i32,
    retained: i32,
) -> Result<()> {
    sqlx::query(
        "UPDATE retention_tasks SET status = $2, total = $3, retained = $4, finished_at = now()
          WHERE id = $1",
    )
    .bind(task_id)
    .bind(status.as_str())
    .bind(total)
    .bind(retained)
    .execute(db)
    .await?;
    Ok(())
}

/// Mark every unfinished task of a run stopped.
pub async fn stop_unfinished_tasks(db: impl PgExecutor<'_>, execution_id: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE retention_tasks SET status = 'Stopped', finished_at = now()
          WHERE execution_id = $1 AND status IN ('Pending', 'Running')",
    )
    .bind(execution_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// Append lines to a task's log, each stamped with the database's UTC time
/// as the execution logs are.
pub async fn append_task_log(
    db: impl PgExecutor<'_>,
    task_id: i64,
    lines: &[String],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE retention_tasks
            SET log = log || (SELECT string_agg(
                    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                    || ' [INFO] ' || line || E'\\n', '' ORDER BY n)
                  FROM UNNEST($2::text[]) WITH ORDINALITY AS l(line, n))
          WHERE id = $1",
    )
    .bind(task_id)
    .bind(lines)
    .execute(db)
    .await?;
    Ok(())
}

/// One page of a run's tasks, oldest first.
pub async fn list_tasks(
    pool: &sqlx::PgPool,
    execution_id: i64,
    page: Page,
) -> Result<Listing<Task>> {
    let (limit, offset) = page.limit_offset();
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_tasks WHERE execution_id = $1")
            .bind(execution_id)
            .fetch_one(pool)
            .await?;
    let rows: Vec<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = $1
          ORDER BY id LIMIT $2 OFFSET $3"
    )))
    .bind(execution_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Listing {
        items: rows.into_iter().map(task_from_row).collect(),
        total,
    })
}

/// A task of a run and its log.
pub async fn get_task(
    pool: &sqlx::PgPool,
    execution_id: i64,
    task_id: i64,
) -> Result<(Task, String)> {
    let row: Option<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = $1 AND id = $2"
    )))
    .bind(execution_id)
    .bind(task_id)
    .fetch_optional(pool)
    .await?;
    let task = task_from_row(row.ok_or(Error::NotFound)?);
    // A log is appended to while the task runs; read after the row, it
    // holds at least what the row's counts describe.
    let log: String = sqlx::query_scalar("SELECT log FROM retention_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(pool)
        .await?;
    Ok((task, log))
}

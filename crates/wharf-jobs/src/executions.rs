//! The execution history every job kind shares (table `job_executions`).
//!
//! An execution is created in the same transaction as the job's enqueue
//! ([`create_execution`] then [`crate::Jobs::enqueue`] with
//! [`crate::with_execution`]), so a job and its history row exist together
//! or not at all. Its life:
//!
//! ```text
//! Pending ──start──▶ Running ──finish──▶ Success | Error
//!    │                  │
//!    │ request_stop     │ request_stop
//!    ▼                  ▼
//! Stopped ◀──finish── Stopping
//! ```
//!
//! The dispatcher does `start` and `finish` around the handler; handlers
//! only log, check [`is_stop_requested`] and may `finish` themselves to
//! record a result. A worker that dies mid-job leaves the execution
//! `Running`; the queue hands the job to another worker once the dead one's
//! heartbeat is stale, and that attempt finds the execution still `Running`
//! (`JobContext::resumed` is true) and resumes or restarts the work.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::JobsError;

/// What started an execution (Harbor's `trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Someone asked for it through the API.
    Manual,
    /// A schedule's tick.
    Schedule,
    /// Something that happened (a push, a deletion).
    Event,
}

impl Trigger {
    /// Harbor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "Manual",
            Trigger::Schedule => "Schedule",
            Trigger::Event => "Event",
        }
    }

    fn parse(s: &str) -> Trigger {
        match s {
            "Schedule" => Trigger::Schedule,
            "Event" => Trigger::Event,
            _ => Trigger::Manual,
        }
    }
}

/// Where an execution is in its life (Harbor's job status names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// Created, its job not yet picked up.
    Pending,
    /// A worker is on it (or was, and died: see the module docs).
    Running,
    /// Finished without error.
    Success,
    /// Finished with an error, or gave up after its last retry.
    Error,
    /// A stop was requested while it ran; the handler has not yet noticed.
    Stopping,
    /// Stopped before or while running.
    Stopped,
}

impl ExecutionStatus {
    /// Harbor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "Pending",
            ExecutionStatus::Running => "Running",
            ExecutionStatus::Success => "Success",
            ExecutionStatus::Error => "Error",
            ExecutionStatus::Stopping => "Stopping",
            ExecutionStatus::Stopped => "Stopped",
        }
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Success | ExecutionStatus::Error | ExecutionStatus::Stopped
        )
    }

    /// Parse Harbor's spelling (unknown text reads as `Pending`; use
    /// [`ExecutionStatus::from_name`] to refuse it).
    fn parse(s: &str) -> ExecutionStatus {
        ExecutionStatus::from_name(s).unwrap_or(ExecutionStatus::Pending)
    }

    /// Parse Harbor's spelling, case-insensitively.
    pub fn from_name(s: &str) -> Option<ExecutionStatus> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pending" => ExecutionStatus::Pending,
            "running" => ExecutionStatus::Running,
            "success" => ExecutionStatus::Success,
            "error" => ExecutionStatus::Error,
            "stopping" => ExecutionStatus::Stopping,
            "stopped" => ExecutionStatus::Stopped,
            _ => return None,
        })
    }
}

/// How an execution ended, for [`finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work. Recorded as `Stopped` if a stop was requested.
    Success,
    /// It failed.
    Error,
    /// It stopped early because a stop was requested.
    Stopped,
}

/// One execution (without its log: see [`get_log`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Its id (Harbor's `id` in the histories).
    pub id: i64,
    /// The job kind.
    pub kind: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it is now.
    pub status: ExecutionStatus,
    /// What it was asked to do.
    pub parameters: serde_json::Value,
    /// What it found or did, when it has finished (kind-specific).
    pub result: Option<serde_json::Value>,
    /// The project it concerns, for per-project jobs.
    pub project_id: Option<i64>,
    /// When it was created (enqueued).
    pub created_at: DateTime<Utc>,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// When anything about it last changed (status, log).
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    trigger: String,
    status: String,
    parameters: serde_json::Value,
    result: Option<serde_json::Value>,
    project_id: Option<i64>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Execution {
    fn from(r: Row) -> Execution {
        Execution {
            id: r.id,
            kind: r.kind,
            trigger: Trigger::parse(&r.trigger),
            status: ExecutionStatus::parse(&r.status),
            parameters: r.parameters,
            result: r.result,
            project_id: r.project_id,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "id, kind, \"trigger\", status, parameters, result, project_id, \
                       created_at, started_at, finished_at, updated_at";

/// Record a new `Pending` execution and return its id. Call it in the
/// transaction that enqueues the job.
pub async fn create_execution(
    executor: impl PgExecutor<'_>,
    kind: &str,
    trigger: Trigger,
    parameters: serde_json::Value,
    project_id: Option<i64>,
) -> Result<i64, JobsError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO job_executions (kind, \"trigger\", parameters, project_id) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(kind)
    .bind(trigger.as_str())
    .bind(parameters)
    .bind(project_id)
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// Mark an execution as running (a `Pending` one becomes `Running`; one
/// already `Running` stays so) and return its status before and after. A
/// status that was already `Running` means an earlier attempt failed or its
/// worker died: the job is resuming. A final or `Stopping` status is
/// returned unchanged: the caller must not run the job then.
pub async fn start(
    executor: impl PgExecutor<'_>,
    id: i64,
) -> Result<(ExecutionStatus, ExecutionStatus), JobsError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "WITH old AS (SELECT id, status FROM job_executions WHERE id = $1 FOR UPDATE) \
         UPDATE job_executions e \
         SET status = CASE WHEN old.status = 'Pending' THEN 'Running' ELSE old.status END, \
             started_at = CASE WHEN old.status IN ('Pending', 'Running') \
                          THEN coalesce(e.started_at, now()) ELSE e.started_at END, \
             updated_at = now() \
         FROM old WHERE e.id = old.id RETURNING old.status, e.status",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.map(|(before, after)| {
        (
            ExecutionStatus::parse(&before),
            ExecutionStatus::parse(&after),
        )
    })
    .ok_or(JobsError::ExecutionNotFound(id))
}

/// Append one line to an execution's log, prefixed with the database's
/// UTC time (`2026-12-02T10:00:00Z [INFO] ...`, as Harbor's job logs).
pub async fn append_log(
    executor: impl PgExecutor<'_>,
    id: i64,
    line: &str,
) -> Result<(), JobsError> {
    let done = sqlx::query(
        "UPDATE job_executions \
         SET log = log || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                   || ' [INFO] ' || $2 || E'\\n', \
             updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(line.trim_end_matches('\n'))
    .execute(executor)
    .await?;
    if done.rows_affected() == 0 {
        return Err(JobsError::ExecutionNotFound(id));
    }
    Ok(())
}

/// Move an execution to its final status. `result`, when given, is merged
/// into the result already recorded (top-level keys of two objects;
/// replaced otherwise), so a handler's partial result survives the
/// dispatcher adding `{"error": ...}`. A `Success` of an execution asked to stop is recorded as
/// `Stopped`. Returns `false` (and changes nothing) when it had already
/// finished, so the dispatcher's own `finish` after a handler that finished
/// itself is harmless.
pub async fn finish(
    executor: impl PgExecutor<'_>,
    id: i64,
    outcome: Outcome,
    result: Option<serde_json::Value>,
) -> Result<bool, JobsError> {
    let status = match outcome {
        Outcome::Success => "Success",
        Outcome::Error => "Error",
        Outcome::Stopped => "Stopped",
    };
    let done = sqlx::query(
        "UPDATE job_executions \
         SET status = CASE WHEN status = 'Stopping' AND $2 = 'Success' THEN 'Stopped' ELSE $2 END, \
             result = CASE WHEN $3::jsonb IS NULL THEN result \
                           WHEN jsonb_typeof(result) = 'object' AND jsonb_typeof($3) = 'object' \
                           THEN result || $3 ELSE $3 END, \
             started_at = coalesce(started_at, now()), \
             finished_at = now(), updated_at = now() \
         WHERE id = $1 AND status IN ('Pending', 'Running', 'Stopping')",
    )
    .bind(id)
    .bind(status)
    .bind(result)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ask an execution to stop: a `Pending` one is `Stopped` at once (its job
/// will do nothing), a `Running` one becomes `Stopping` until its handler
/// notices. Returns `false` when it had already finished or was stopping.
pub async fn request_stop(executor: impl PgExecutor<'_>, id: i64) -> Result<bool, JobsError> {
    let row: Option<(bool,)> = sqlx::query_as(
        "WITH target AS (SELECT id, status FROM job_executions WHERE id = $1 FOR UPDATE), \
         changed AS ( \
           UPDATE job_executions e \
           SET status = CASE WHEN t.status = 'Pending' THEN 'Stopped' ELSE 'Stopping' END, \
               finished_at = CASE WHEN t.status = 'Pending' THEN now() ELSE e.finished_at END, \
               updated_at = now() \
           FROM target t WHERE e.id = t.id AND t.status IN ('Pending', 'Running') \
           RETURNING e.id) \
         SELECT EXISTS (SELECT 1 FROM changed) FROM target",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    match row {
        Some((changed,)) => Ok(changed),
        None => Err(JobsError::ExecutionNotFound(id)),
    }
}

/// Whether a stop was requested (status `Stopping` or `Stopped`). An
/// execution that does not exist reads as stopped: there is nothing to do.
pub async fn is_stop_requested(executor: impl PgExecutor<'_>, id: i64) -> Result<bool, JobsError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM job_executions WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?;
    Ok(status.is_none_or(|s| s == "Stopping" || s == "Stopped"))
}

/// One execution by id.
pub async fn get_execution(
    executor: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<Execution>, JobsError> {
    let sql = format!("SELECT {COLUMNS} FROM job_executions WHERE id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(Execution::from))
}

/// An execution's log (`None` when there is no such execution).
pub async fn get_log(executor: impl PgExecutor<'_>, id: i64) -> Result<Option<String>, JobsError> {
    Ok(
        sqlx::query_scalar("SELECT log FROM job_executions WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

/// Which executions [`list_executions`] returns: of one kind, optionally of
/// one project, newest first, one page of them.
#[derive(Debug, Clone)]
pub struct ExecutionQuery {
    /// The job kind.
    pub kind: String,
    /// Only this project's executions (all of them when `None`).
    pub project_id: Option<i64>,
    /// 1-based page number.
    pub page: u32,
    /// Rows per page (clamped to 1–100).
    pub page_size: u32,
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

impl ExecutionQuery {
    /// Page 1 of 10 of `kind`, every project.
    pub fn new(kind: impl Into<String>) -> ExecutionQuery {
        ExecutionQuery {
            kind: kind.into(),
            project_id: None,
            page: 1,
            page_size: 10,
            status: None,
            oldest_first: false,
        }
    }
}

/// One page of executions (newest first unless asked otherwise) and how
/// many match in all.
pub async fn list_executions(
    executor: impl PgExecutor<'_>,
    query: &ExecutionQuery,
) -> Result<(Vec<Execution>, i64), JobsError> {
    let size = i64::from(query.page_size.clamp(1, 100));
    let offset = (i64::from(query.page.max(1)) - 1) * size;
    // One statement, so the page and the total agree; the LEFT JOIN keeps
    // the total when the page is past the end.
    let order = if query.oldest_first { "ASC" } else { "DESC" };
    let sql = format!(
        "WITH matching AS (SELECT {COLUMNS} FROM job_executions \
           WHERE kind = $1 AND ($2::bigint IS NULL OR project_id = $2) \
             AND ($5::text IS NULL OR status = $5)) \
         SELECT (SELECT count(*) FROM matching) AS total, page.* \
         FROM (SELECT 1) AS one \
         LEFT JOIN LATERAL (SELECT * FROM matching ORDER BY id {order} LIMIT $3 OFFSET $4) page \
         ON true"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&query.kind)
        .bind(query.project_id)
        .bind(size)
        .bind(offset)
        .bind(query.status.map(ExecutionStatus::as_str))
        .fetch_all(executor)
        .await?;
    use sqlx::{FromRow, Row as _};
    let mut total = 0;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        total = row.try_get::<i64, _>("total")?;
        if row.try_get::<Option<i64>, _>("id")?.is_some() {
            items.push(Execution::from(Row::from_row(row)?));
        }
    }
    Ok((items, total))
}

//! Background jobs for Wharf: a durable PostgreSQL job queue shared by every
//! replica, cron schedules that fire once per tick in the cluster, and the
//! execution history (status, parameters, result, log) that Harbor's GC,
//! audit-log purge and retention histories are read from.
//!
//! The queue is the `graphile_worker` crate (jobs in its own
//! `graphile_worker` schema, claimed with `SKIP LOCKED`, woken by
//! `LISTEN/NOTIFY`, retried with exponential backoff). Wharf puts a single
//! queue task, `wharf_job`, on it that carries `{kind, payload}` and
//! dispatches to the [`JobHandler`] registered for `kind`; see `docs/jobs.md`.
//!
//! Typical use:
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(pool: sqlx::PgPool, handler: Arc<dyn wharf_jobs::JobHandler>) -> Result<(), wharf_jobs::JobsError> {
//! let mut jobs = wharf_jobs::Jobs::start(pool.clone()).await?;
//! jobs.register("gc", handler);
//! let _worker = jobs.run_worker(4, std::future::pending());
//! let _scheduler = jobs.run_scheduler(std::future::pending());
//!
//! let mut tx = pool.begin().await?;
//! let id = wharf_jobs::create_execution(&mut *tx, "gc", wharf_jobs::Trigger::Manual,
//!     serde_json::json!({"dry_run": true}), None).await?;
//! jobs.enqueue(&mut tx, "gc", wharf_jobs::with_execution(serde_json::json!({"dry_run": true}), id),
//!     Default::default()).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

mod dispatch;
pub mod executions;
mod scheduler;
pub mod schedules;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use graphile_worker::WorkerUtils;
use sqlx::{Connection, PgConnection, PgPool};

pub use executions::{
    Execution, ExecutionQuery, ExecutionStatus, Outcome, Trigger, append_log, create_execution,
    finish, get_execution, get_log, is_stop_requested, list_executions, request_stop, start,
};
pub use schedules::{
    Schedule, ScheduleType, cron_for, delete_schedule, get_schedule, next_tick, schedule_type_of,
    set_schedule, validate_cron,
};

/// The PostgreSQL schema the queue's own tables live in.
pub const QUEUE_SCHEMA: &str = "graphile_worker";

/// The one queue task every Wharf job is carried by (see [`dispatch`]).
pub(crate) const QUEUE_TASK: &str = "wharf_job";

/// The payload key that names the execution a job reports to.
pub const EXECUTION_ID_KEY: &str = "execution_id";

/// What can go wrong in the job system itself (not in a job: that is a
/// [`JobFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A query on Wharf's job tables failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The queue crate refused an operation (adding a job, migrating).
    #[error("job queue error: {0}")]
    Queue(String),
    /// A cron expression that is not six valid fields.
    #[error("invalid cron expression {cron:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        cron: String,
        /// Why it was refused.
        reason: String,
    },
    /// A Harbor schedule object that cannot be turned into a cron.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// No execution with that id.
    #[error("execution {0} not found")]
    ExecutionNotFound(i64),
}

/// How a job is enqueued. All fields are optional.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// De-duplication key: while a job with this key is waiting, enqueueing
    /// another with the same key replaces it (payload and run time) instead
    /// of adding a second one. A job already running is not affected; the
    /// new one is queued after it.
    pub job_key: Option<String>,
    /// Run no earlier than this (default: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before giving up on [`JobFailure::Retry`] (default 25, as
    /// graphile_worker; at least 1).
    pub max_attempts: Option<u16>,
    /// Jobs that share a queue name run one at a time, in order (e.g. one
    /// garbage collection at a time). Default: no serialisation.
    pub queue_name: Option<String>,
}

/// Why a job did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Transient (database or storage unreachable, conflict): retried with
    /// exponential backoff (e^attempt seconds, capped at e^10 ≈ 6 h) until
    /// `max_attempts`; then the execution is marked `Error` with this text.
    Retry(String),
    /// Permanent (bad payload, the thing it works on is gone): not retried;
    /// the execution is marked `Error` with this text.
    Fatal(String),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Retry(m) => write!(f, "{m}"),
            JobFailure::Fatal(m) => write!(f, "{m}"),
        }
    }
}

impl From<sqlx::Error> for JobFailure {
    /// Database errors are usually transient (a restart, a failover, a
    /// serialisation conflict): retry.
    fn from(e: sqlx::Error) -> Self {
        JobFailure::Retry(format!("database error: {e}"))
    }
}

impl From<JobsError> for JobFailure {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::Database(_) | JobsError::Queue(_) => JobFailure::Retry(e.to_string()),
            _ => JobFailure::Fatal(e.to_string()),
        }
    }
}

/// What a handler is told about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The pool the job system was started with.
    pub pool: PgPool,
    /// Which attempt this is: 1 on the first run, 2 after one failure...
    /// (A job released from a dead worker keeps its attempt number: that
    /// was no failure of the job. See `resumed`.)
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The job kind.
    pub kind: String,
    /// The queue's id for this job (stable across its attempts).
    pub job_id: i64,
    /// The execution this job reports to, when the payload carries one
    /// (`"execution_id"`, see [`with_execution`]). The dispatcher has already
    /// moved it to `Running`; it finishes it when the handler returns, unless
    /// the handler did so itself with a result.
    pub execution_id: Option<i64>,
    /// The execution was already `Running` when this attempt began: an
    /// earlier attempt failed or its worker died part-way. The handler must
    /// resume or restart idempotently (it always must; this says why).
    pub resumed: bool,
}

impl JobContext {
    /// Append a timestamped line to the execution's log (no-op without an
    /// execution). Errors are logged, not returned: a log line is never a
    /// reason to fail a job.
    pub async fn log(&self, line: impl AsRef<str>) {
        if let Some(id) = self.execution_id
            && let Err(e) = append_log(&self.pool, id, line.as_ref()).await
        {
            tracing::warn!(execution = id, error = %e, "could not append to execution log");
        }
    }

    /// Whether someone asked the execution to stop (`false` without an
    /// execution). Long handlers check this between batches and return
    /// `Ok(())` early; the dispatcher then records `Stopped`.
    pub async fn stop_requested(&self) -> Result<bool, JobFailure> {
        match self.execution_id {
            Some(id) => Ok(is_stop_requested(&self.pool, id).await?),
            None => Ok(false),
        }
    }
}

/// The code that runs one kind of job.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Run the job. It may run more than once for one enqueue (a retry, or
    /// a worker that died mid-job), so it must be idempotent.
    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<(), JobFailure>;
}

/// How one run of a job's handler ended, as a [`JobObserver`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The handler returned `Ok` (also when it stopped early on request).
    Succeeded,
    /// It failed (or panicked) and the queue will try it again.
    Retrying,
    /// It failed for good: a [`JobFailure::Fatal`], or the last attempt.
    Failed,
}

impl AttemptOutcome {
    /// Every outcome, for observers that want to start each count at zero.
    pub const ALL: [AttemptOutcome; 3] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Retrying,
        AttemptOutcome::Failed,
    ];

    /// `succeeded`, `retrying` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retrying => "retrying",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// Hears about every job attempt this process's workers run to an end
/// (metrics count them). Attempts cut short by shutdown or a dead worker
/// are not reported: they end nowhere, and run again elsewhere.
pub trait JobObserver: Send + Sync + 'static {
    /// The handler of `kind` (a registered kind) ended with `outcome`.
    /// Called on the worker's task: it must not block.
    fn attempt_finished(&self, kind: &'static str, outcome: AttemptOutcome);
}

/// Dead-worker recovery and polling settings. The defaults suit production;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerTimings {
    /// How often a worker records that it is alive.
    pub heartbeat_interval: Duration,
    /// How often workers look for dead peers.
    pub sweep_interval: Duration,
    /// A worker silent this long is dead: its jobs are released.
    pub sweep_threshold: Duration,
    /// How long a released job waits before it may run again.
    pub recovery_delay: Duration,
    /// How often to poll for jobs when no notification arrives (jobs whose
    /// `run_at` passes, retries).
    pub poll_interval: Duration,
    /// After shutdown is requested, how long running jobs may go on before
    /// they are interrupted and released for another worker.
    pub shutdown_grace_period: Duration,
    /// How long a job interrupted by shutdown waits before it may run again.
    pub interrupted_job_retry_delay: Duration,
}

impl Default for WorkerTimings {
    fn default() -> Self {
        WorkerTimings {
            heartbeat_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(60),
            sweep_threshold: Duration::from_secs(5 * 60),
            recovery_delay: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace_period: Duration::from_secs(10),
            interrupted_job_retry_delay: Duration::from_secs(5),
        }
    }
}

pub(crate) type Handlers = HashMap<&'static str, Arc<dyn JobHandler>>;

/// The job system of one process: enqueue jobs, run workers and the
/// scheduler. Cheap to clone; clones share the registered handlers as they
/// were when cloned.
#[derive(Clone)]
pub struct Jobs {
    pool: PgPool,
    handlers: Arc<Handlers>,
    timings: WorkerTimings,
    observer: Option<Arc<dyn JobObserver>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Install or upgrade the queue's own schema (`graphile_worker`). Safe
    /// when several replicas start at once: they take turns under an
    /// advisory lock. Wharf's tables (`job_executions`, `job_schedules`)
    /// come from the workspace migrations, which must have run.
    pub async fn start(pool: PgPool) -> Result<Jobs, JobsError> {
        let utils = WorkerUtils::new(pool.clone(), QUEUE_SCHEMA);
        // graphile_worker's migrator tolerates most races, but two first
        // installs can still collide on CREATE SCHEMA; serialise them. The
        // lock is held on a connection of its own, outside the pool, so a
        // small pool still has one for the migration itself.
        let mut lock = PgConnection::connect_with(&pool.connect_options()).await?;
        sqlx::query("SELECT pg_advisory_lock(hashtext('wharf-jobs-migrate'))")
            .execute(&mut lock)
            .await?;
        let migrated = utils.migrate().await;
        // Closing the session releases the lock even if this fails.
        let _ = lock.close().await;
        migrated.map_err(|e| JobsError::Queue(format!("installing the queue schema: {e}")))?;
        Ok(Jobs {
            pool,
            handlers: Arc::new(HashMap::new()),
            timings: WorkerTimings::default(),
            observer: None,
        })
    }

    /// The pool the job system uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Replace the worker timings (before `run_worker`).
    pub fn set_timings(&mut self, timings: WorkerTimings) {
        self.timings = timings;
    }

    /// Tell `observer` how every job attempt of this process's workers ends
    /// (before `run_worker`; replaces an earlier observer).
    pub fn set_observer(&mut self, observer: Arc<dyn JobObserver>) {
        self.observer = Some(observer);
    }

    /// Register the handler of a job kind (before `run_worker`). A later
    /// registration of the same kind replaces the earlier one.
    pub fn register(&mut self, kind: &'static str, handler: Arc<dyn JobHandler>) {
        Arc::make_mut(&mut self.handlers).insert(kind, handler);
    }

    /// The kinds registered so far.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// Enqueue `kind` with `payload` inside the caller's transaction: the job
    /// exists only if that transaction commits. Pass a connection that is
    /// inside a transaction (`&mut tx`); on a bare connection the job is
    /// added at once. Same as the free function [`enqueue`].
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<(), JobsError> {
        enqueue(conn, kind, payload, options).await
    }

    /// Run workers until `shutdown` resolves: claim jobs, run handlers (up to
    /// `concurrency` at once), retry failures with backoff. The worker uses
    /// the pool: give it about `concurrency + 2` connections beyond what the
    /// rest of the process needs (one listens for new jobs). Any number of
    /// processes may run workers on one database; each job runs on one of
    /// them at a time. On shutdown, running jobs get a grace period and are
    /// then released for another worker.
    pub fn run_worker(
        &self,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        dispatch::spawn_worker(
            self.pool.clone(),
            self.handlers.clone(),
            self.timings.clone(),
            self.observer.clone(),
            concurrency.max(1),
            shutdown,
        )
    }

    /// Run the scheduler loop until `shutdown` resolves. Every replica runs
    /// one; each due tick of each schedule fires exactly once in the cluster,
    /// and ticks missed while every replica was down fire once, not once per
    /// missed tick.
    pub fn run_scheduler(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        scheduler::spawn(self.clone(), shutdown)
    }

    /// Fire every schedule that is due now, once (what the scheduler loop
    /// does on each wake-up). Returns how many ticks this call fired, or the
    /// first error when a due schedule could not fire (the others still
    /// were).
    pub async fn fire_due_schedules(&self) -> Result<usize, JobsError> {
        scheduler::fire_due(self).await
    }

    /// Jobs waiting or running, by kind (those that gave up are not
    /// counted), sorted by kind.
    pub async fn queue_depth(&self) -> Result<Vec<(String, i64)>, JobsError> {
        let sql = format!(
            "SELECT j.payload->>'kind' AS kind, count(*) AS n \
             FROM {QUEUE_SCHEMA}._private_jobs j \
             JOIN {QUEUE_SCHEMA}._private_tasks t ON t.id = j.task_id \
             WHERE t.identifier = $1 AND j.attempts < j.max_attempts \
             GROUP BY 1 ORDER BY 1"
        );
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(QUEUE_TASK)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k.unwrap_or_default(), n))
            .collect())
    }
}

/// Enqueue `kind` with `payload` on `conn` without a [`Jobs`] handle (for
/// code such as HTTP handlers that only has a pool). Uses the queue's SQL
/// `add_job` function, so it takes part in the caller's transaction. The
/// queue schema must have been installed by [`Jobs::start`].
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: serde_json::Value,
    options: EnqueueOptions,
) -> Result<(), JobsError> {
    let job = serde_json::json!({ "kind": kind, "payload": payload });
    let max_attempts = options.max_attempts.map(|n| i32::from(n.max(1)));
    let sql = format!(
        "SELECT 1 FROM {QUEUE_SCHEMA}.add_job(identifier => $1, payload => $2::json, \
         queue_name => $3, run_at => $4, max_attempts => $5, job_key => $6)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(QUEUE_TASK)
        .bind(job)
        .bind(options.queue_name)
        .bind(options.run_at)
        .bind(max_attempts)
        .bind(options.job_key)
        .execute(conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(ref d) if d.code().as_deref() == Some("3F000") => {
                JobsError::Queue(format!(
                    "the job queue is not installed (call Jobs::start at start-up): {e}"
                ))
            }
            e => JobsError::Database(e),
        })?;
    Ok(())
}

/// `payload` with `"execution_id": id` added, so the handler's
/// [`JobContext::execution_id`] is set and the dispatcher keeps the
/// execution's status. A non-object payload is wrapped as
/// `{"execution_id": id, "value": payload}`.
pub fn with_execution(payload: serde_json::Value, id: i64) -> serde_json::Value {
    match payload {
        serde_json::Value::Object(mut map) => {
            map.insert(EXECUTION_ID_KEY.into(), id.into());
            serde_json::Value::Object(map)
        }
        serde_json::Value::Null => serde_json::json!({ EXECUTION_ID_KEY: id }),
        other => serde_json::json!({ EXECUTION_ID_KEY: id, "value": other }),
    }
}

//! Garbage collection as a job: Harbor's `GARBAGE_COLLECTION`, run by the
//! workers of `wharf_jobs` when `/system/gc/schedule` asks for a run now or a
//! schedule fires. The collection itself is the registry's
//! ([`wharf_registry::Registry::collect_garbage`]); this module reads
//! Harbor's parameters, feeds the run's log into the execution's log, passes
//! stop requests on, and records the report as the execution's result.
//!
//! A collection is idempotent, so a run interrupted by a dead worker is
//! simply started again by the next attempt.
//!
//! [`change_gc`] is what both the REST API and the console call to run a
//! collection now or to set or remove its schedule.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use wharf_jobs::{JobContext, JobFailure, JobHandler, Outcome};
use wharf_registry::Registry;
use wharf_registry::gc::{GcError, GcObserver, GcOptions, MAX_WORKERS};
use wharf_registry::seams::Principal;

use crate::audit::{self, AuditEntry};
use crate::error::{Error, Result};

/// The job kind (and execution kind) of garbage collections.
pub const KIND: &str = "gc";

/// Harbor's vendor type, the `job_name` of GC histories.
pub const VENDOR_TYPE: &str = "GARBAGE_COLLECTION";

/// The schedule name of garbage collection.
pub const SCHEDULE_NAME: &str = "gc";

/// Queue name of manual runs: they run one after another.
pub const QUEUE: &str = "gc";

/// Attempts of a manual run before its execution is marked `Error`.
pub const MAX_ATTEMPTS: u16 = 5;

/// What a collection does, read from Harbor's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcParams {
    /// Report only.
    pub dry_run: bool,
    /// Also delete untagged artifacts.
    pub delete_untagged: bool,
    /// Parallel blob deletions (1–5).
    pub workers: u8,
}

impl Default for GcParams {
    /// A real run, untagged artifacts kept, one worker.
    fn default() -> Self {
        GcParams {
            dry_run: false,
            delete_untagged: false,
            workers: 1,
        }
    }
}

fn flag(p: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!("{key} must be true or false, got {other}")),
    }
}

impl GcParams {
    /// Read and check Harbor's parameters (`dry_run`, `delete_untagged`,
    /// `workers`; others, such as Harbor's `time_window`, are ignored).
    /// Absent flags are false: unlike Harbor, omitting `delete_untagged`
    /// never deletes artifacts.
    pub fn from_parameters(p: &Map<String, Value>) -> Result<GcParams, String> {
        let workers = match p.get("workers") {
            None | Some(Value::Null) => 1,
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| "workers should be integer format".to_owned())?;
                if !(1..=MAX_WORKERS as i64).contains(&n) {
                    return Err(format!(
                        "Error: Invalid number of workers:{n}. Workers must be greater than 0 \
                         and less than or equal to {MAX_WORKERS}."
                    ));
                }
                n as u8
            }
        };
        Ok(GcParams {
            dry_run: flag(p, "dry_run")?,
            delete_untagged: flag(p, "delete_untagged")?,
            workers,
        })
    }

    /// The parameters as stored with the execution and shown in histories.
    pub fn to_parameters(self) -> Value {
        json!({
            "dry_run": self.dry_run,
            "delete_untagged": self.delete_untagged,
            "workers": self.workers,
        })
    }

    /// The registry's options for these parameters.
    pub fn options(self) -> GcOptions {
        GcOptions {
            dry_run: self.dry_run,
            delete_untagged: self.delete_untagged,
            workers: usize::from(self.workers),
            actor: Principal {
                name: Some("garbage-collector".to_owned()),
                client_addr: None,
            },
        }
    }
}

/// Serialises "is a collection pending?" with "create one" across replicas
/// (transaction-level advisory lock; a class of its own).
const START_LOCK: (i32, i32) = (0x0b10_b0c0, 1);

/// What a change to garbage collection asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcChange {
    /// Collect once, now.
    RunNow,
    /// Remove the schedule.
    Unschedule,
    /// Collect on this (validated, six-field) cron.
    Schedule(String),
}

/// Who asks for a change, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub struct GcActor<'a> {
    /// A username or a robot's login name.
    pub username: &'a str,
    /// The client's address, when known.
    pub client_addr: Option<&'a str>,
}

/// Carry out `change` with `params`, audited, in one transaction. Returns
/// the new execution's id for [`GcChange::RunNow`]; a run asked for while
/// another is waiting or running is an [`Error::Conflict`] naming it.
/// Callers decide who may (the `garbage-collection` system resource).
pub async fn change_gc(
    pool: &sqlx::PgPool,
    actor: GcActor<'_>,
    change: &GcChange,
    params: GcParams,
) -> Result<Option<i64>> {
    let parameters = params.to_parameters();
    let what = describe(params);
    let mut tx = pool.begin().await?;
    let created = match change {
        GcChange::RunNow => {
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(START_LOCK.0)
                .bind(START_LOCK.1)
                .execute(&mut *tx)
                .await?;
            if let Some(id) = busy_run(&mut *tx).await? {
                return Err(Error::Conflict(format!(
                    "garbage collection {id} is already waiting or running; \
                     stop it (PUT /system/gc/{id}) or wait for it to finish"
                )));
            }
            let id = wharf_jobs::create_execution(
                &mut *tx,
                KIND,
                wharf_jobs::Trigger::Manual,
                parameters.clone(),
                None,
            )
            .await
            .map_err(jobs_error)?;
            wharf_jobs::enqueue(
                &mut tx,
                KIND,
                wharf_jobs::with_execution(parameters, id),
                wharf_jobs::EnqueueOptions {
                    queue_name: Some(QUEUE.to_owned()),
                    max_attempts: Some(MAX_ATTEMPTS),
                    ..wharf_jobs::EnqueueOptions::default()
                },
            )
            .await
            .map_err(jobs_error)?;
            record(
                &mut tx,
                actor,
                "create",
                &format!("started garbage collection {id} ({what})"),
            )
            .await?;
            Some(id)
        }
        GcChange::Unschedule => {
            wharf_jobs::delete_schedule(&mut *tx, SCHEDULE_NAME)
                .await
                .map_err(jobs_error)?;
            record(
                &mut tx,
                actor,
                "delete",
                "removed the garbage collection schedule",
            )
            .await?;
            None
        }
        GcChange::Schedule(cron) => {
            wharf_jobs::set_schedule(&mut tx, SCHEDULE_NAME, KIND, cron, parameters)
                .await
                .map_err(jobs_error)?;
            record(
                &mut tx,
                actor,
                "update",
                &format!("scheduled garbage collection at {cron:?} ({what})"),
            )
            .await?;
            None
        }
    };
    tx.commit().await?;
    Ok(created)
}

/// The collection waiting or running, if any.
pub async fn busy_run(db: impl sqlx::PgExecutor<'_>) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM job_executions
          WHERE kind = $1 AND status IN ('Pending', 'Running', 'Stopping')
          ORDER BY id LIMIT 1",
    )
    .bind(KIND)
    .fetch_optional(db)
    .await?)
}

/// Ask the collection `id` to stop (a waiting one at once, a running one
/// after its current batch), audited when it was still going. Returns
/// whether it was; [`Error::NotFound`] when `id` is no collection.
pub async fn stop_gc(pool: &sqlx::PgPool, actor: GcActor<'_>, id: i64) -> Result<bool> {
    let execution = wharf_jobs::get_execution(pool, id)
        .await
        .map_err(jobs_error)?
        .filter(|e| e.kind == KIND)
        .ok_or(Error::NotFound)?;
    let mut tx = pool.begin().await?;
    let stopped = wharf_jobs::request_stop(&mut *tx, execution.id)
        .await
        .map_err(jobs_error)?;
    if stopped {
        record(
            &mut tx,
            actor,
            "update",
            &format!("stopped garbage collection {id}"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(stopped)
}

fn describe(params: GcParams) -> String {
    format!(
        "dry_run={}, delete_untagged={}, workers={}",
        params.dry_run, params.delete_untagged, params.workers
    )
}

/// The audit entry of a change to garbage collection (in the change's
/// transaction).
async fn record(
    tx: &mut sqlx::PgConnection,
    actor: GcActor<'_>,
    operation: &str,
    description: &str,
) -> Result<()> {
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: None,
            username: actor.username,
            operation,
            description,
            success: true,
            resource_type: "garbage_collection",
            resource: SCHEDULE_NAME,
            client_addr: actor.client_addr,
        },
    )
    .await?;
    Ok(())
}

/// The job system's errors in this crate's terms: a bad cron is the
/// caller's mistake, the rest is the server's.
fn jobs_error(e: wharf_jobs::JobsError) -> Error {
    use wharf_jobs::JobsError;
    match e {
        JobsError::InvalidCron { .. } | JobsError::InvalidSchedule(_) => {
            Error::Invalid(e.to_string())
        }
        JobsError::ExecutionNotFound(_) => Error::NotFound,
        JobsError::Database(cause) => Error::Database(cause),
        other => Error::Internal(other.to_string()),
    }
}

/// The garbage collection job handler.
#[derive(Clone)]
pub struct GcJob {
    registry: Registry,
}

impl GcJob {
    /// Collect garbage in `registry` (built with the server's admission and
    /// event seams, so untagged artifacts are deleted as `/v2` deletes them).
    pub fn new(registry: Registry) -> Self {
        GcJob { registry }
    }
}

/// The run's log goes to the execution's log; its stop request to the run.
struct ExecutionLog<'a>(&'a JobContext);

#[async_trait]
impl GcObserver for ExecutionLog<'_> {
    async fn log(&self, line: &str) {
        self.0.log(line).await;
    }

    async fn stop_requested(&self) -> bool {
        match self.0.stop_requested().await {
            Ok(stop) => stop,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the garbage collection's stop request");
                false
            }
        }
    }
}

#[async_trait]
impl JobHandler for GcJob {
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<(), JobFailure> {
        let empty = Map::new();
        let params = GcParams::from_parameters(payload.as_object().unwrap_or(&empty))
            .map_err(JobFailure::Fatal)?;
        if ctx.resumed {
            ctx.log("an earlier attempt was interrupted: collecting again from the start")
                .await;
        }
        let report = match self
            .registry
            .collect_garbage(&params.options(), &ExecutionLog(&ctx))
            .await
        {
            Ok(report) => report,
            Err(GcError::AlreadyRunning) => {
                ctx.log("another garbage collection is running; this one will retry later")
                    .await;
                return Err(JobFailure::Retry(
                    "another garbage collection is running".into(),
                ));
            }
            Err(e) => return Err(JobFailure::Retry(e.to_string())),
        };
        if let Some(id) = ctx.execution_id {
            let outcome = if report.stopped {
                Outcome::Stopped
            } else {
                Outcome::Success
            };
            let result = serde_json::to_value(&report).unwrap_or(Value::Null);
            if let Err(e) = wharf_jobs::finish(&ctx.pool, id, outcome, Some(result)).await {
                tracing::warn!(execution = id, error = %e, "could not record the GC report");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Result<GcParams, String> {
        GcParams::from_parameters(v.as_object().unwrap())
    }

    #[test]
    fn harbor_parameters_are_read_and_checked() {
        assert_eq!(params(json!({})).unwrap(), GcParams::default());
        let p = params(json!({"dry_run": true, "delete_untagged": "true", "workers": 3})).unwrap();
        assert_eq!(
            p,
            GcParams {
                dry_run: true,
                delete_untagged: true,
                workers: 3
            }
        );
        assert_eq!(params(json!({"workers": "5"})).unwrap().workers, 5);
        let e = params(json!({"workers": 6})).unwrap_err();
        assert!(e.contains("Invalid number of workers:6"), "{e}");
        assert!(params(json!({"workers": 0})).is_err());
        assert_eq!(
            params(json!({"workers": 1.5})).unwrap_err(),
            "workers should be integer format"
        );
        assert!(params(json!({"dry_run": "maybe"})).is_err());
        assert_eq!(
            p.to_parameters(),
            json!({"dry_run": true, "delete_untagged": true, "workers": 3})
        );
        assert_eq!(p.options().workers, 3);
    }
}

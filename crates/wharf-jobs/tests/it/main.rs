//! Integration tests for wharf-jobs against a real PostgreSQL: the queue
//! (transactions, retries, several workers, dead workers), executions, and
//! schedules with the scheduler on several instances.

mod executions;
mod observer;
mod queue;
mod schedules;
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use wharf_jobs::{JobContext, JobFailure, JobHandler, Jobs, WorkerTimings};

/// The job kind every test enqueues.
pub const KIND: &str = "test";

/// A handler that records each run in `test_runs` and then behaves as the
/// payload's `mode` says:
/// - `ok` (default): succeed;
/// - `retry`: fail transiently, every time;
/// - `fatal`: fail permanently;
/// - `sleep`: sleep `ms` milliseconds, then succeed;
/// - `hang_on`: on the worker named `worker` hang (until the worker is
///   dropped); elsewhere succeed;
/// - `until_stopped`: loop until a stop is requested, then return.
pub struct Recorder {
    pub worker: &'static str,
}

#[async_trait::async_trait]
impl JobHandler for Recorder {
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<(), JobFailure> {
        let tag = payload["tag"].as_str().unwrap_or("").to_owned();
        sqlx::query(
            "INSERT INTO test_runs (tag, worker, attempt, execution_id, resumed) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&tag)
        .bind(self.worker)
        .bind(ctx.attempt as i32)
        .bind(ctx.execution_id)
        .bind(ctx.resumed)
        .execute(&ctx.pool)
        .await?;
        match payload["mode"].as_str().unwrap_or("ok") {
            "retry" => Err(JobFailure::Retry(format!("storage unreachable ({tag})"))),
            "fatal" => Err(JobFailure::Fatal(format!("bad payload ({tag})"))),
            "sleep" => {
                let ms = payload["ms"].as_u64().unwrap_or(50);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            "hang_on" if payload["worker"].as_str() == Some(self.worker) => {
                ctx.log("working on it").await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            "until_stopped" => {
                ctx.log("looping until stopped").await;
                while !ctx.stop_requested().await? {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ctx.log("stop noticed").await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Timings short enough for tests: dead workers are noticed within ~1.5 s.
pub fn fast_timings() -> WorkerTimings {
    WorkerTimings {
        heartbeat_interval: Duration::from_millis(200),
        sweep_interval: Duration::from_millis(300),
        sweep_threshold: Duration::from_secs(1),
        recovery_delay: Duration::from_millis(0),
        poll_interval: Duration::from_millis(100),
        shutdown_grace_period: Duration::from_secs(1),
        interrupted_job_retry_delay: Duration::from_millis(100),
    }
}

/// A job system on `pool` with [`Recorder`] registered for [`KIND`], and
/// the `test_runs` table it writes to.
pub async fn jobs_on(pool: &PgPool, worker: &'static str) -> Jobs {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS test_runs ( \
           id bigserial PRIMARY KEY, tag text NOT NULL, worker text NOT NULL, \
           attempt int NOT NULL, execution_id bigint, resumed bool NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .execute(pool)
    .await
    .expect("test_runs table");
    let mut jobs = Jobs::start(pool.clone()).await.expect("jobs start");
    jobs.set_timings(fast_timings());
    jobs.register(KIND, Arc::new(Recorder { worker }));
    jobs
}

/// Runs of `tag` so far: (worker, attempt), in order.
pub async fn runs(pool: &PgPool, tag: &str) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT worker, attempt FROM test_runs WHERE tag = $1 ORDER BY id")
        .bind(tag)
        .fetch_all(pool)
        .await
        .expect("read test_runs")
}

/// A shutdown signal for `run_worker`/`run_scheduler` and its trigger.
pub fn shutdown_pair() -> (
    tokio::sync::oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

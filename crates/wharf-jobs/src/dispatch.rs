//! The bridge between graphile_worker and Wharf's handlers.
//!
//! graphile_worker wants one Rust type per task identifier, fixed at compile
//! time; Wharf's job kinds are registered at run time by several crates. So
//! there is a single queue task, [`QUEUE_TASK`], whose payload is
//! `{kind, payload}`, and [`run_one`] looks the handler up, keeps the
//! execution's status, and turns [`JobFailure`] into the queue's retry or
//! completion.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{AbortHandle, Abortable};
use graphile_worker::{
    IntoTaskHandlerResult, TaskHandler, WorkerContext, WorkerOptions, WorkerRecoveryConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use crate::executions::{self, ExecutionStatus, Outcome};
use crate::{
    AttemptOutcome, EXECUTION_ID_KEY, Handlers, JobContext, JobFailure, JobObserver, JobsError,
    QUEUE_SCHEMA, QUEUE_TASK, WorkerTimings,
};

/// What the queue stores for every Wharf job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QueuedJob {
    pub kind: String,
    pub payload: Value,
}

/// A failure as the queue records it (`last_error`): the plain message,
/// where graphile_worker would otherwise store `Debug` output with quotes.
struct QueueError(String);

impl std::fmt::Debug for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TaskHandler for QueuedJob {
    const IDENTIFIER: &'static str = QUEUE_TASK;

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let Some(dispatch) = ctx.get_ext::<Dispatch>().cloned() else {
            return Err(QueueError("worker started without a dispatcher".into()));
        };
        dispatch.run_one(self, &ctx).await
    }
}

/// Handlers in flight on one worker, so that dropping the worker (its task
/// aborted, as when the process dies) stops them too instead of leaving them
/// running detached inside graphile_worker's own tasks.
#[derive(Default)]
struct InFlight {
    dead: AtomicBool,
    next: AtomicU64,
    handles: Mutex<HashMap<u64, AbortHandle>>,
}

impl InFlight {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles.into_values() {
            handle.abort();
        }
    }
}

/// Aborts the worker's handlers when the worker's task is dropped.
struct KillOnDrop(Arc<InFlight>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// The queue task's view of the process: handlers and pool. A worker
/// extension, so it must be `Clone + Debug`.
#[derive(Clone)]
struct Dispatch {
    pool: PgPool,
    handlers: Arc<Handlers>,
    in_flight: Arc<InFlight>,
    observer: Option<Arc<dyn JobObserver>>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

impl Dispatch {
    async fn run_one(self, job: QueuedJob, ctx: &WorkerContext) -> Result<(), QueueError> {
        let queue_job = ctx.job();
        let attempt = u32::try_from(*queue_job.attempts()).unwrap_or(1).max(1);
        let max_attempts = u32::try_from(*queue_job.max_attempts()).unwrap_or(1).max(1);
        let job_id = *queue_job.id();
        let kind = job.kind;

        let Some((&kind_name, handler)) = self.handlers.get_key_value(kind.as_str()) else {
            // A newer replica may know this kind (rolling upgrade): let the
            // queue retry rather than drop it.
            tracing::warn!(job_id, kind, "no handler for this job kind on this worker");
            return Err(QueueError(format!(
                "no handler registered for job kind {kind:?} on this worker"
            )));
        };
        let handler = handler.clone();

        let mut execution_id = job.payload.get(EXECUTION_ID_KEY).and_then(Value::as_i64);
        let mut resumed = false;
        if let Some(id) = execution_id {
            match executions::start(&self.pool, id).await {
                Ok((_, status)) if status.is_final() => {
                    tracing::info!(
                        job_id,
                        kind,
                        execution = id,
                        status = status.as_str(),
                        "execution already finished; nothing to run"
                    );
                    return Ok(());
                }
                Ok((_, ExecutionStatus::Stopping)) => {
                    self.finish(id, Outcome::Stopped, None).await?;
                    return Ok(());
                }
                Ok((before, _)) => {
                    resumed = before == ExecutionStatus::Running;
                    let line = if resumed {
                        format!(
                            "{kind} resumed (attempt {attempt} of {max_attempts}): \
                             an earlier attempt failed or its worker died"
                        )
                    } else {
                        format!("{kind} started (attempt {attempt} of {max_attempts})")
                    };
                    self.log(id, &line).await;
                }
                Err(JobsError::ExecutionNotFound(_)) => {
                    // Its history was deleted; the job itself may still matter.
                    tracing::warn!(job_id, kind, execution = id, "execution row is gone");
                    execution_id = None;
                }
                Err(e) => return Err(QueueError(e.to_string())),
            }
        }

        let context = JobContext {
            pool: self.pool.clone(),
            attempt,
            max_attempts,
            kind: kind.clone(),
            job_id,
            execution_id,
            resumed,
        };
        let (abort, registration) = AbortHandle::new_pair();
        let slot = self.in_flight.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot, abort);
        if self.in_flight.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let outcome = Abortable::new(
            AssertUnwindSafe(handler.run(context, job.payload)).catch_unwind(),
            registration,
        )
        .await;
        self.in_flight
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&slot);
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(JobFailure::Retry(format!(
                "handler panicked: {}",
                panic_message(panic.as_ref())
            ))),
            Err(_aborted) => {
                // The worker was dropped: behave as a dead process would and
                // never report back. The job stays locked until another
                // worker's sweep sees this one's heartbeat stop and releases it.
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
        };
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(()) => AttemptOutcome::Succeeded,
                Err(JobFailure::Retry(_)) if attempt < max_attempts => AttemptOutcome::Retrying,
                Err(_) => AttemptOutcome::Failed,
            };
            observer.attempt_finished(kind_name, outcome);
        }

        match result {
            Ok(()) => {
                if let Some(id) = execution_id {
                    self.finish(id, Outcome::Success, None).await?;
                }
                Ok(())
            }
            Err(JobFailure::Fatal(message)) => {
                tracing::warn!(job_id, kind, attempt, error = %message, "job failed");
                if let Some(id) = execution_id {
                    self.log(id, &format!("failed: {message}")).await;
                    self.finish(
                        id,
                        Outcome::Error,
                        Some(serde_json::json!({"error": message})),
                    )
                    .await?;
                }
                // Not retried: the queue's job is done, the execution holds the error.
                Ok(())
            }
            Err(JobFailure::Retry(message)) => {
                if attempt >= max_attempts {
                    tracing::warn!(job_id, kind, attempt, error = %message,
                        "job failed on its last attempt; giving up");
                    if let Some(id) = execution_id {
                        self.log(
                            id,
                            &format!(
                                "attempt {attempt} of {max_attempts} failed: {message}; giving up"
                            ),
                        )
                        .await;
                        self.finish(
                            id,
                            Outcome::Error,
                            Some(serde_json::json!({"error": message})),
                        )
                        .await?;
                    }
                } else {
                    tracing::info!(job_id, kind, attempt, error = %message, "job failed; will retry");
                    if let Some(id) = execution_id {
                        self.log(
                            id,
                            &format!(
                                "attempt {attempt} of {max_attempts} failed: {message}; will retry"
                            ),
                        )
                        .await;
                    }
                }
                Err(QueueError(message))
            }
        }
    }

    async fn log(&self, id: i64, line: &str) {
        if let Err(e) = executions::append_log(&self.pool, id, line).await {
            tracing::warn!(execution = id, error = %e, "could not append to execution log");
        }
    }

    /// Record the end; if that fails the queue retries the job (handlers are
    /// idempotent), so the history is not left saying `Running`.
    async fn finish(
        &self,
        id: i64,
        outcome: Outcome,
        result: Option<Value>,
    ) -> Result<(), QueueError> {
        executions::finish(&self.pool, id, outcome, result)
            .await
            .map(|_| ())
            .map_err(|e| QueueError(format!("recording the end of execution {id}: {e}")))
    }
}

pub(crate) fn spawn_worker(
    pool: PgPool,
    handlers: Arc<Handlers>,
    timings: WorkerTimings,
    observer: Option<Arc<dyn JobObserver>>,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let shutdown = shutdown.boxed().shared();
    tokio::spawn(async move {
        let in_flight = Arc::new(InFlight::default());
        let _kill = KillOnDrop(in_flight.clone());
        loop {
            let dispatch = Dispatch {
                pool: pool.clone(),
                handlers: handlers.clone(),
                in_flight: in_flight.clone(),
                observer: observer.clone(),
            };
            let recovery = WorkerRecoveryConfig {
                heartbeat_interval: timings.heartbeat_interval,
                sweep_interval: timings.sweep_interval,
                sweep_threshold: timings.sweep_threshold,
                recovery_delay: timings.recovery_delay,
                enabled: true,
                ..WorkerRecoveryConfig::default()
            };
            let options = WorkerOptions::default()
                .pg_pool(pool.clone())
                .schema(QUEUE_SCHEMA)
                .concurrency(concurrency)
                .poll_interval(timings.poll_interval)
                .define_job::<QueuedJob>()
                .add_extension(dispatch)
                .worker_recovery(recovery)
                .listen_os_shutdown_signals(false)
                .shutdown_signal(shutdown.clone())
                .shutdown_grace_period(timings.shutdown_grace_period)
                .shutdown_interrupted_job_retry_delay(timings.interrupted_job_retry_delay);
            let result = match options.init().await {
                Ok(worker) => worker.run().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if shutdown.peek().is_some() {
                break;
            }
            match result {
                Ok(()) => tracing::warn!("job worker stopped by itself; restarting"),
                Err(e) => tracing::error!(error = %e, "job worker failed; restarting in 5 s"),
            }
            tokio::select! {
                _ = shutdown.clone() => break,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    })
}

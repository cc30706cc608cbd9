//! The scheduler loop: fire due schedules exactly once in the cluster.
//!
//! Every replica runs the loop. A due schedule is claimed by moving its
//! `next_run_at` from the value read to the next tick after now with a
//! compare-and-set; the execution and the job are created in that same
//! transaction. A second replica's UPDATE waits for the first's row lock,
//! then finds `next_run_at` changed and claims nothing. Because the next
//! tick is computed from now, not from the missed tick, a schedule that was
//! due many times while every replica was down fires once.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::executions::{Trigger, create_execution};
use crate::schedules::next_tick;
use crate::{EnqueueOptions, Jobs, JobsError, with_execution};

/// The longest the loop sleeps, so a schedule set on another replica is
/// noticed within about this long.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// The shortest, so a clock a little behind the database does not spin.
const MIN_WAIT: Duration = Duration::from_millis(20);
/// After an error (database unreachable), wait this long.
const ERROR_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn spawn(
    jobs: Jobs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let wait = match fire_due(&jobs).await {
                Ok(_) => until_next(&jobs).await.unwrap_or(ERROR_WAIT),
                Err(e) => {
                    tracing::error!(error = %e, "scheduler could not fire due schedules");
                    ERROR_WAIT
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

async fn until_next(jobs: &Jobs) -> Result<Duration, JobsError> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (min(next_run_at) - now()))::float8 FROM job_schedules",
    )
    .fetch_one(jobs.pool())
    .await?;
    Ok(match seconds {
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s).clamp(MIN_WAIT, MAX_WAIT),
        Some(_) => MIN_WAIT,
        None => MAX_WAIT,
    })
}

type DueRow = (String, String, String, Value, DateTime<Utc>);

pub(crate) async fn fire_due(jobs: &Jobs) -> Result<usize, JobsError> {
    let due: Vec<DueRow> = sqlx::query_as(
        "SELECT name, kind, cron, payload, next_run_at FROM job_schedules \
         WHERE next_run_at <= now() ORDER BY next_run_at",
    )
    .fetch_all(jobs.pool())
    .await?;
    let mut fired = 0;
    let mut failed = None;
    for row in due {
        let name = row.0.clone();
        match fire_one(jobs, row).await {
            Ok(true) => fired += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(schedule = name, error = %e, "could not fire schedule");
                failed.get_or_insert(e);
            }
        }
    }
    // A schedule that cannot fire stays due; report it so the loop backs off
    // instead of retrying every few milliseconds.
    match failed {
        Some(e) => Err(e),
        None => Ok(fired),
    }
}

async fn fire_one(
    jobs: &Jobs,
    (name, kind, cron, payload, due_at): DueRow,
) -> Result<bool, JobsError> {
    let mut tx = jobs.pool().begin().await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let next = match next_tick(&cron, now) {
        Ok(next) => next,
        Err(e) => {
            // Only possible for a row written behind set_schedule's back;
            // park it for a day instead of failing every second.
            tracing::error!(schedule = name, error = %e, "schedule has an unusable cron");
            now + chrono::Duration::days(1)
        }
    };
    let claimed = sqlx::query(
        "UPDATE job_schedules SET next_run_at = $3, updated_at = now() \
         WHERE name = $1 AND next_run_at = $2",
    )
    .bind(&name)
    .bind(due_at)
    .bind(next)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        tx.rollback().await?;
        return Ok(false);
    }
    let project_id = payload.get("project_id").and_then(Value::as_i64);
    let execution = create_execution(
        &mut *tx,
        &kind,
        Trigger::Schedule,
        payload.clone(),
        project_id,
    )
    .await?;
    jobs.enqueue(
        &mut tx,
        &kind,
        with_execution(payload, execution),
        EnqueueOptions::default(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(schedule = name, kind, execution, %due_at, %next, "schedule fired");
    Ok(true)
}

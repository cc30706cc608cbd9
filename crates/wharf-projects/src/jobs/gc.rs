//! Garbage collection as a job: Harbor's `GARBAGE_COLLECTION`, run by the
//! workers of `wharf_jobs` when `/system/gc/schedule` asks for a run now or a
//! schedule fires. The collection itself is the registry's
//! ([`wharf_registry::Registry::collect_garbage`]); this module reads
//! Harbor's parameters, feeds the run's log into the execution's log, passes
//! stop requests on, and records the report as the execution's result.
//!
//! A collection is idempotent, so a run interrupted by a dead worker is
//! simply started again by the next attempt.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use wharf_jobs::{JobContext, JobFailure, JobHandler, Outcome};
use wharf_registry::Registry;
use wharf_registry::gc::{GcError, GcObserver, GcOptions, MAX_WORKERS};
use wharf_registry::seams::Principal;

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

//! Background work: the job queue with every job kind registered (garbage
//! collection, retention, quota repair, audit purges, ...), this process's
//! workers and its scheduler. `wharf serve` runs it beside the HTTP server;
//! `wharf worker` runs only this.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_registry::Registry;

use crate::config::Config;

/// How long running jobs get to finish at shutdown before they go back to
/// the queue for another process (or the next start).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The running queue of this process.
pub struct Background {
    stop: watch::Sender<bool>,
    worker: Option<JoinHandle<()>>,
    scheduler: JoinHandle<()>,
}

impl Background {
    /// Install the queue, register every job kind, and start `workers`
    /// workers (none when 0: jobs still queue and schedules still fire,
    /// other processes run them) and the scheduler.
    pub async fn start(
        pool: &PgPool,
        registry: &Registry,
        config: &Config,
        workers: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(pool, registry, config, workers, |_| {}).await
    }

    /// [`Background::start`], calling `before_workers` with the job system
    /// once every kind is registered and before any worker runs (where
    /// metrics attach their observer).
    pub async fn start_with(
        pool: &PgPool,
        registry: &Registry,
        config: &Config,
        workers: usize,
        before_workers: impl FnOnce(&mut wharf_jobs::Jobs),
    ) -> anyhow::Result<Self> {
        let mut jobs = wharf_jobs::Jobs::start(pool.clone())
            .await
            .context("cannot start the job queue")?;
        wharf_projects::jobs::register_jobs(&mut jobs);
        jobs.register(
            wharf_projects::jobs::gc::KIND,
            Arc::new(wharf_projects::jobs::gc::GcJob::new(registry.clone())),
        );
        jobs.register(
            wharf_projects::retention::KIND,
            Arc::new(wharf_projects::retention::RetentionJob::new(
                registry.clone(),
            )),
        );
        // Replaces the default delivery job register_jobs installed: this
        // one has the configured timeout and attempts, and the registry's
        // host for the payloads' `resource_url`.
        let registry_host = config
            .external_url
            .as_deref()
            .and_then(wharf_projects::webhooks::registry_host_of);
        let webhooks =
            wharf_projects::webhooks::WebhookJob::new(config.webhooks.clone(), registry_host)
                .context("cannot build the webhook HTTP client")?;
        jobs.register(wharf_projects::webhooks::KIND, Arc::new(webhooks));
        before_workers(&mut jobs);
        let (stop, stopping) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let worker =
            (workers > 0).then(|| jobs.run_worker(workers, until_stopped(stopping.clone())));
        let scheduler = jobs.run_scheduler(until_stopped(stopping));
        Ok(Self {
            stop,
            worker,
            scheduler,
        })
    }

    /// Stop taking jobs, give running ones [`STOP_GRACE`], stop scheduling.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(worker) = self.worker {
            let _ = tokio::time::timeout(STOP_GRACE, worker).await;
        }
        self.scheduler.abort();
    }
}

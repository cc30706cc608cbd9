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
use wharf_replication::policies::ReplicationJob;
use wharf_replication::registries::Registries;

use crate::config::Config;
use crate::metrics::Metrics;

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
        registries: &Registries,
        config: &Config,
        workers: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(pool, registry, registries, config, workers, None).await
    }

    /// [`Background::start`], with `metrics` counting the jobs' outcomes
    /// and replication's bytes (attached once every kind is registered and
    /// before any worker runs).
    pub async fn start_with(
        pool: &PgPool,
        registry: &Registry,
        registries: &Registries,
        config: &Config,
        workers: usize,
        metrics: Option<&Metrics>,
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
        let mut replication = ReplicationJob::new(registries.clone());
        if let Some(metrics) = metrics {
            let bytes = metrics.replication_bytes();
            replication = replication.with_bytes_observer(Arc::new(move |n| {
                bytes.inc_by(n);
            }));
        }
        jobs.register(wharf_replication::policies::JOB_KIND, replication);
        if let Some(metrics) = metrics {
            metrics.watch_jobs(&mut jobs);
        }
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

//! The background jobs of this crate and their registration with the job
//! system (`wharf_jobs`). The gateway calls [`register_jobs`] once at
//! start-up, before it runs workers.

pub mod gc;
pub mod purge_audit;

use std::sync::Arc;

/// Register every job handler of this crate.
pub fn register_jobs(jobs: &mut wharf_jobs::Jobs) {
    jobs.register(purge_audit::KIND, Arc::new(purge_audit::PurgeAuditJob));
    jobs.register(
        crate::quotas::RECALCULATE_JOB,
        Arc::new(crate::quotas::RecalculateJob),
    );
    // Defaults: the gateway registers it again with its configuration and
    // the registry's host, which replaces this one.
    match crate::webhooks::WebhookJob::new(Default::default(), None) {
        Ok(job) => jobs.register(crate::webhooks::KIND, Arc::new(job)),
        Err(e) => tracing::error!(error = %e, "webhooks cannot be sent: no HTTP client"),
    }
}

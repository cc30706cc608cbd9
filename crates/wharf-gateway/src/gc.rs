//! `wharf gc`: one garbage collection, run directly against the configured
//! database and storage, with no server. It is the same collection the
//! `/api/v2.0/system/gc` job runs (same locks, so it is safe while servers
//! serve, and it refuses to start while another collection runs), with the
//! same admission (quota usage) and audit log for untagged artifacts it
//! deletes.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use wharf_projects::admission::ProjectAdmission;
use wharf_projects::audit::RegistryAudit;
use wharf_registry::Registry;
use wharf_registry::gc::{GcObserver, GcOptions, GcReport};
use wharf_registry::seams::Principal;
use wharf_store::{BlobStore, StorageConfig};

use crate::config::Config;
use crate::database::Database;

/// Prints the run's log lines as they come: to stdout, or to stderr when
/// stdout is reserved for the JSON report.
struct Print {
    to_stderr: bool,
}

#[async_trait]
impl GcObserver for Print {
    async fn log(&self, line: &str) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Run one collection with `options` and return its report. With `json`,
/// the log goes to stderr and the report is printed to stdout as JSON.
pub async fn run(config: Config, options: GcOptions, json: bool) -> anyhow::Result<GcReport> {
    let db = Database::open(&config).await?;
    let result = collect(&config, &db, options, json).await;
    db.close().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(report)
}

async fn collect(
    config: &Config,
    db: &Database,
    options: GcOptions,
    json: bool,
) -> anyhow::Result<GcReport> {
    // The collector's queries rely on the latest schema (its index).
    db.migrate().await?;
    let pool = db.pool().clone();
    if let StorageConfig::Filesystem { root } = &config.storage {
        anyhow::ensure!(
            root.is_dir(),
            "the storage directory {} does not exist: is data_dir (or storage.root) right?",
            root.display()
        );
    }
    let store = BlobStore::from_config(&config.storage)
        .await
        .context("cannot open blob storage")?;
    let (audit, audit_writer) = RegistryAudit::spawn(pool.clone());
    let registry = Registry::new(pool.clone(), store, config.registry.clone())
        .with_admission(Arc::new(ProjectAdmission::new(pool)))
        .with_events(Arc::new(audit));
    let options = GcOptions {
        actor: Principal {
            name: Some("garbage-collector".to_owned()),
            client_addr: None,
        },
        ..options
    };
    let report = registry
        .collect_garbage(&options, &Print { to_stderr: json })
        .await
        .context("garbage collection failed");
    drop(registry);
    let _ = audit_writer.await;
    report
}

//! Online garbage collection: deletes what nothing references while pushes
//! and pulls go on.
//!
//! One run, in five steps, each streaming its candidates in small batches
//! (keyset pagination), so memory stays flat whatever the registry's size:
//!
//! 1. *Untagged artifacts* (only with `delete_untagged`): manifests with no
//!    tag, not listed by an index of their repository, and not an accessory
//!    (a manifest whose `subject` is) of a manifest that stays. Each goes in
//!    its own transaction exactly like a `DELETE /v2/.../manifests/<digest>`
//!    (admission, audit event), and repeats until a pass finds nothing new,
//!    so an index's children and an artifact's accessories follow it.
//! 2. *Links*: a repository stops serving blobs none of its manifests is or
//!    references.
//! 3. *Blobs*: a blob no manifest anywhere is or references, and no
//!    repository linked recently, loses its rows and then its bytes.
//! 4. *Orphaned bytes*: store objects with no row (left by a crash between a
//!    blob's row deletion and its byte deletion, or by a push that failed
//!    after storing a manifest's bytes) are removed.
//! 5. *Abandoned uploads* are purged.
//!
//! ## Why no push can lose a blob
//!
//! Everything that makes a digest reachable (publishing an upload, a mount,
//! a manifest `PUT` referencing blobs) holds a *shared* advisory lock on the
//! digest until its transaction commits (`db::blob_locks`). The collector
//! takes the *exclusive* lock before it removes a link or a blob, and decides
//! in a statement that starts after the lock is granted, so it sees every
//! reference committed by a writer it waited for. Either the writer commits
//! first and the collector sees the reference and keeps the blob, or the
//! collector deletes first and the writer, which checks under its lock,
//! finds the blob gone: `MANIFEST_BLOB_UNKNOWN` for the manifest, a fresh
//! upload for a mount; never a committed manifest whose bytes are gone.
//!
//! For blobs the exclusive lock is a *session* lock held across the commit
//! that deletes the rows and the deletion of the bytes: an upload of the same
//! digest waits until the bytes are gone and then writes them again, so a
//! row never outlives its bytes. A crash between the commit and the byte
//! deletion leaves bytes without a row, which step 4 removes (under the same
//! lock, after checking again that no row appeared).
//!
//! The grace period is the other half: blobs, links and untagged manifests
//! recorded less than `gc_grace_period_secs` ago are not candidates, so a
//! client that uploads its layers now and its manifest in a minute does not
//! have to upload them twice. The locks make GC safe; the grace period makes
//! it polite.
//!
//! A dry run walks the same steps with the same queries, recording the
//! manifests step 1 would delete in a temporary table that every later query
//! treats as gone, and deletes nothing.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{Connection, PgConnection};
use wharf_oci::{Digest, RepositoryName};
use wharf_store::StoreError;

use crate::Registry;
use crate::db;
use crate::seams::{AdmissionError, Deletion, Principal, RegistryEvent};

/// Candidates handled per batch. Each blob batch holds this many advisory
/// locks at once, well inside PostgreSQL's shared lock table. Small enough
/// that a statement carrying a batch's digests fits one TLS record (16 KiB):
/// sqlx does not set `TCP_NODELAY`, and a second record would wait for the
/// server's delayed ACK (40 ms) on every such statement.
const BATCH: i64 = 128;

/// Most parallel byte deletions (Harbor's limit for `workers`).
pub const MAX_WORKERS: usize = 5;

/// How often the observer is asked whether to stop.
const STOP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What one collection does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Also delete untagged artifacts (step 1).
    pub delete_untagged: bool,
    /// Parallel byte deletions, 1 to [`MAX_WORKERS`] (clamped).
    pub workers: usize,
    /// Who the audit log names for artifacts deleted by step 1.
    pub actor: Principal,
}

impl Default for GcOptions {
    /// A real run, untagged artifacts kept, one worker, acting as
    /// `garbage-collector`.
    fn default() -> Self {
        Self {
            dry_run: false,
            delete_untagged: false,
            workers: 1,
            actor: Principal {
                name: Some("garbage-collector".to_owned()),
                client_addr: None,
            },
        }
    }
}

/// What one collection did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Untagged manifests deleted (step 1).
    pub manifests_deleted: u64,
    /// Repository links removed (step 2).
    pub links_removed: u64,
    /// Blobs deleted, rows and bytes (step 3).
    pub blobs_deleted: u64,
    /// Their total size.
    pub bytes_freed: u64,
    /// Store objects that had no row, removed (step 4).
    pub orphans_deleted: u64,
    /// Their total size.
    pub orphan_bytes_freed: u64,
    /// Abandoned upload sessions and upload data purged (step 5).
    pub uploads_purged: u64,
    /// Byte deletions that failed; the bytes stay as orphans for the next run.
    pub failures: u64,
    /// The run stopped early because a stop was requested.
    pub stopped: bool,
    /// Wall time of the run.
    pub elapsed_ms: u64,
}

impl GcReport {
    /// Bytes freed by steps 3 and 4 together.
    pub fn total_bytes_freed(&self) -> u64 {
        self.bytes_freed + self.orphan_bytes_freed
    }

    /// One line for logs and the command line.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        format!(
            "{verb} {} untagged artifacts, {} links, {} blobs ({}) and {} orphaned objects ({}); \
             purged {} uploads; {} failures; {:.1}s{}",
            self.manifests_deleted,
            self.links_removed,
            self.blobs_deleted,
            human_bytes(self.bytes_freed),
            self.orphans_deleted,
            human_bytes(self.orphan_bytes_freed),
            self.uploads_purged,
            self.failures,
            self.elapsed_ms as f64 / 1000.0,
            if self.stopped {
                "; stopped on request"
            } else {
                ""
            },
        )
    }
}

/// `1234567` → `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Why a collection could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Another collection holds the run lock (another replica, `wharf gc`).
    #[error("another garbage collection is running")]
    AlreadyRunning,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Registry(crate::RegistryError),
}

impl From<crate::RegistryError> for GcError {
    fn from(e: crate::RegistryError) -> Self {
        match e {
            crate::RegistryError::Database(e) => GcError::Database(e),
            crate::RegistryError::Store(e) => GcError::Store(e),
            other => GcError::Registry(other),
        }
    }
}

/// Watches a run: receives its log lines and may ask it to stop (checked
/// between batches, at most once a second).
#[async_trait]
pub trait GcObserver: Send + Sync {
    /// One line of the run's log.
    async fn log(&self, line: &str);
    /// Whether the run should stop now.
    async fn stop_requested(&self) -> bool {
        false
    }
}

/// Writes the run's log lines to the structured log (target `wharf::gc`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogObserver;

#[async_trait]
impl GcObserver for LogObserver {
    async fn log(&self, line: &str) {
        tracing::info!(target: "wharf::gc", "{line}");
    }
}

impl Registry {
    /// Run one garbage collection (see the module documentation). One at a
    /// time per database: [`GcError::AlreadyRunning`] if another is running.
    pub async fn collect_garbage(
        &self,
        options: &GcOptions,
        observer: &dyn GcObserver,
    ) -> Result<GcReport, GcError> {
        let started = Instant::now();
        // A connection of its own, never returned to the pool: it holds the
        // run lock, session blob locks and the dry run's temporary table, all
        // of which must end with the run (closing it releases everything,
        // whatever went wrong).
        let mut conn = self.inner.pool.acquire().await?.detach();
        if !db::gc::try_lock_run(&mut conn).await? {
            return Err(GcError::AlreadyRunning);
        }
        db::gc::prepare(&mut conn).await?;
        let grace = self.inner.config.gc_grace_period_secs;
        let cutoff = db::gc::cutoff(&mut conn, grace).await?;
        let mut run = Run {
            registry: self,
            conn,
            options,
            workers: options.workers.clamp(1, MAX_WORKERS),
            observer,
            cutoff,
            report: GcReport {
                dry_run: options.dry_run,
                ..GcReport::default()
            },
            // The first check happens at once.
            last_stop_check: Instant::now()
                .checked_sub(STOP_CHECK_EVERY)
                .unwrap_or_else(Instant::now),
        };
        run.log(format!(
            "garbage collection started: dry_run={} delete_untagged={} workers={} \
             grace_period={grace}s (nothing recorded after {cutoff} is touched)",
            options.dry_run, options.delete_untagged, run.workers,
        ))
        .await;
        let outcome = run.steps().await;
        let Run {
            conn, mut report, ..
        } = run;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(()) => {
                let _ = conn.close().await;
                observer
                    .log(&format!(
                        "garbage collection finished: {}",
                        report.summary()
                    ))
                    .await;
                Ok(report)
            }
            Err(e) => {
                // Dropped, not closed: the connection may be broken, and
                // dropping it ends the session and its locks either way.
                drop(conn);
                observer
                    .log(&format!(
                        "garbage collection failed: {e}; so far: {}",
                        report.summary()
                    ))
                    .await;
                Err(e)
            }
        }
    }
}

/// Whether a step ran to its end or a stop was requested.
enum Flow {
    Done,
    Stop,
}

struct Run<'a> {
    registry: &'a Registry,
    conn: PgConnection,
    options: &'a GcOptions,
    workers: usize,
    observer: &'a dyn GcObserver,
    cutoff: DateTime<Utc>,
    report: GcReport,
    last_stop_check: Instant,
}

impl Run<'_> {
    async fn log(&self, line: String) {
        self.observer.log(&line).await;
    }

    /// True (once logged) when the observer asks to stop.
    async fn should_stop(&mut self) -> bool {
        if self.last_stop_check.elapsed() < STOP_CHECK_EVERY {
            return false;
        }
        self.last_stop_check = Instant::now();
        if self.observer.stop_requested().await {
            self.report.stopped = true;
            self.log("stop requested: ending after the current batch".to_owned())
                .await;
            return true;
        }
        false
    }

    async fn steps(&mut self) -> Result<(), GcError> {
        if self.options.delete_untagged {
            if let Flow::Stop = self.untagged_artifacts().await? {
                return Ok(());
            }
        } else {
            self.log("step 1/5: untagged artifacts are kept (delete_untagged is off)".into())
                .await;
        }
        if let Flow::Stop = self.links().await? {
            return Ok(());
        }
        if let Flow::Stop = self.blobs().await? {
            return Ok(());
        }
        if let Flow::Stop = self.orphans().await? {
            return Ok(());
        }
        self.uploads().await
    }

    /// Step 1.
    async fn untagged_artifacts(&mut self) -> Result<Flow, GcError> {
        self.log("step 1/5: deleting untagged artifacts".into())
            .await;
        let verb = if self.options.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        // Passes until one deletes nothing: deleting an index or a subject
        // turns its children and accessories into candidates.
        loop {
            let mut deleted_this_pass = 0;
            let mut after = 0;
            loop {
                if self.should_stop().await {
                    return Ok(Flow::Stop);
                }
                let batch = db::gc::untagged(&mut self.conn, self.cutoff, after, BATCH).await?;
                let Some(last) = batch.last() else { break };
                after = last.id;
                if self.options.dry_run {
                    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
                    db::gc::doom(&mut self.conn, &ids).await?;
                }
                for manifest in &batch {
                    let gone = self.options.dry_run || self.delete_untagged(manifest).await?;
                    if gone {
                        deleted_this_pass += 1;
                        self.log(format!(
                            "{verb} untagged artifact {}@{} ({})",
                            manifest.repository,
                            manifest.digest,
                            human_bytes(manifest.size as u64)
                        ))
                        .await;
                    }
                }
            }
            self.report.manifests_deleted += deleted_this_pass;
            if deleted_this_pass == 0 {
                break;
            }
        }
        self.log(format!(
            "step 1/5 done: {verb} {} untagged artifacts",
            self.report.manifests_deleted
        ))
        .await;
        Ok(Flow::Done)
    }

    /// Delete one untagged manifest the way `DELETE /v2/<name>/manifests/<digest>`
    /// does, if it is still untagged and unneeded. False if it was kept.
    async fn delete_untagged(&mut self, manifest: &db::gc::Untagged) -> Result<bool, GcError> {
        let (Ok(repository), Ok(digest)) = (
            RepositoryName::parse(&manifest.repository),
            Digest::parse(&manifest.digest),
        ) else {
            return Ok(false);
        };
        let inner = &self.registry.inner;
        let mut tx = self.conn.begin().await?;
        // A push of this very manifest (which holds its digest shared) either
        // commits first, tags and all, or waits for this deletion.
        db::blob_locks::exclusive(&mut tx, &manifest.digest).await?;
        if !db::gc::lock_if_still_untagged(&mut tx, self.cutoff, manifest.id).await? {
            return Ok(false);
        }
        let deletion = Deletion {
            repository: &repository,
            repository_id: manifest.repository_id,
            tag: None,
            digest: Some(&digest),
        };
        match inner.admission.admit_delete(&mut tx, &deletion).await {
            Ok(()) => {}
            Err(AdmissionError::Denied { message }) => {
                drop(tx);
                self.log(format!(
                    "kept untagged artifact {repository}@{digest}: {message}"
                ))
                .await;
                return Ok(false);
            }
            Err(AdmissionError::Database(e)) => return Err(e.into()),
        }
        if !db::manifests::delete(&mut tx, &repository, &digest).await? {
            return Ok(false);
        }
        let event = RegistryEvent::ManifestDeleted {
            repository,
            digest,
            actor: self.options.actor.clone(),
        };
        inner.events.record_change(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Step 2.
    async fn links(&mut self) -> Result<Flow, GcError> {
        self.log("step 2/5: unlinking blobs no manifest of their repository needs".into())
            .await;
        let mut after: (i64, String) = (0, String::new());
        loop {
            if self.should_stop().await {
                return Ok(Flow::Stop);
            }
            let batch =
                db::gc::unneeded_links(&mut self.conn, self.cutoff, (after.0, &after.1), BATCH)
                    .await?;
            let Some(last) = batch.last() else { break };
            after = last.clone();
            if self.options.dry_run {
                self.report.links_removed += batch.len() as u64;
                continue;
            }
            let digests: Vec<String> = batch.iter().map(|(_, d)| d.clone()).collect();
            let mut tx = self.conn.begin().await?;
            db::blob_locks::exclusive_all(&mut tx, &digests).await?;
            self.report.links_removed += db::gc::unlink(&mut tx, self.cutoff, &batch).await?;
            tx.commit().await?;
        }
        let verb = if self.options.dry_run {
            "would remove"
        } else {
            "removed"
        };
        self.log(format!(
            "step 2/5 done: {verb} {} links",
            self.report.links_removed
        ))
        .await;
        Ok(Flow::Done)
    }

    /// Step 3.
    async fn blobs(&mut self) -> Result<Flow, GcError> {
        self.log("step 3/5: deleting unreferenced blobs".into())
            .await;
        let mut after = String::new();
        loop {
            if self.should_stop().await {
                return Ok(Flow::Stop);
            }
            let batch = db::gc::unneeded_blobs(&mut self.conn, self.cutoff, &after, BATCH).await?;
            let Some((last, _)) = batch.last() else { break };
            after = last.clone();
            if self.options.dry_run {
                self.report.blobs_deleted += batch.len() as u64;
                self.report.bytes_freed += batch.iter().map(|(_, s)| *s as u64).sum::<u64>();
                continue;
            }
            let digests: Vec<String> = batch.into_iter().map(|(d, _)| d).collect();
            self.delete_blob_batch(&digests).await?;
        }
        let verb = if self.options.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        self.log(format!(
            "step 3/5 done: {verb} {} blobs, freeing {} ({} bytes)",
            self.report.blobs_deleted,
            human_bytes(self.report.bytes_freed),
            self.report.bytes_freed
        ))
        .await;
        Ok(Flow::Done)
    }

    /// Under the digests' session locks: delete the rows of those still
    /// unneeded, commit, delete their bytes, release the locks.
    async fn delete_blob_batch(&mut self, digests: &[String]) -> Result<(), GcError> {
        db::blob_locks::exclusive_session(&mut self.conn, digests).await?;
        let mut tx = self.conn.begin().await?;
        let doomed = db::gc::delete_blobs(&mut tx, self.cutoff, digests).await?;
        tx.commit().await?;
        let (deleted, bytes, failed) = self.delete_bytes(&doomed).await;
        self.release(digests, &deleted).await?;
        self.report.blobs_deleted += doomed.len() as u64;
        self.report.bytes_freed += bytes;
        self.report.failures += failed;
        if !doomed.is_empty() {
            self.log(format!(
                "deleted {} blobs ({}) up to {}",
                doomed.len(),
                human_bytes(bytes),
                doomed.last().map(|(d, _)| d.as_str()).unwrap_or_default()
            ))
            .await;
        }
        Ok(())
    }

    /// Delete the bytes of `blobs` with `workers` deletions in flight.
    /// Returns the digests whose bytes went, their total size and the
    /// number of failures (logged; those bytes are orphans now).
    async fn delete_bytes(&self, blobs: &[(String, i64)]) -> (Vec<String>, u64, u64) {
        let store = &self.registry.inner.store;
        let results: Vec<(String, i64, Result<(), StoreError>)> =
            futures_util::stream::iter(blobs.iter().cloned())
                .map(|(digest, size)| async move {
                    let result = match Digest::parse(&digest) {
                        Ok(d) => store.delete(&d).await,
                        // Not a digest we could have stored bytes under.
                        Err(_) => Ok(()),
                    };
                    (digest, size, result)
                })
                .buffer_unordered(self.workers)
                .collect()
                .await;
        let mut deleted = Vec::with_capacity(results.len());
        let mut bytes = 0;
        let mut failed = 0;
        for (digest, size, result) in results {
            match result {
                Ok(()) => {
                    bytes += size as u64;
                    deleted.push(digest);
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(target: "wharf::gc", %digest, error = %e, "could not delete blob bytes");
                    self.log(format!(
                        "could not delete the bytes of {digest}: {e} (the next run removes them)"
                    ))
                    .await;
                }
            }
        }
        (deleted, bytes, failed)
    }

    /// Release session locks. If that fails the session may have ended
    /// before the bytes were deleted, letting an upload republish a digest
    /// whose bytes were then deleted: say so loudly for each such digest.
    async fn release(&mut self, locked: &[String], deleted: &[String]) -> Result<(), GcError> {
        match db::blob_locks::release_session(&mut self.conn, locked).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Ok(republished) = db::gc::with_rows(&self.registry.inner.pool, deleted).await
                {
                    for digest in republished {
                        tracing::error!(
                            target: "wharf::gc", %digest,
                            "the collector lost its database session while deleting blob bytes, \
                             and the blob was uploaded again meanwhile: its bytes may be missing; \
                             push it again"
                        );
                        self.log(format!(
                            "ERROR: {digest} was uploaded again while the collector's session \
                             was lost; its bytes may be missing"
                        ))
                        .await;
                    }
                }
                Err(e.into())
            }
        }
    }

    /// Step 4.
    async fn orphans(&mut self) -> Result<Flow, GcError> {
        self.log("step 4/5: sweeping stored bytes that have no blob record".into())
            .await;
        let cutoff = std::time::SystemTime::from(self.cutoff);
        let store = self.registry.inner.store.clone();
        let mut listing = store
            .list_blobs()
            .try_filter(|blob| std::future::ready(blob.modified < cutoff))
            .try_chunks(BATCH as usize);
        while let Some(chunk) = listing.try_next().await.map_err(|e| GcError::Store(e.1))? {
            if self.should_stop().await {
                return Ok(Flow::Stop);
            }
            let digests: Vec<String> = chunk.iter().map(|b| b.digest.to_string()).collect();
            let orphans = db::gc::without_rows(&mut self.conn, &digests).await?;
            if orphans.is_empty() {
                continue;
            }
            let sizes: std::collections::HashMap<String, u64> = chunk
                .iter()
                .map(|b| (b.digest.to_string(), b.size))
                .collect();
            if self.options.dry_run {
                self.report.orphans_deleted += orphans.len() as u64;
                self.report.orphan_bytes_freed +=
                    orphans.iter().filter_map(|d| sizes.get(d)).sum::<u64>();
                continue;
            }
            db::blob_locks::exclusive_session(&mut self.conn, &orphans).await?;
            // A publication may have committed its row while we waited.
            let still = db::gc::without_rows(&mut self.conn, &orphans).await?;
            let doomed: Vec<(String, i64)> = still
                .into_iter()
                .map(|d| {
                    let size = sizes.get(&d).copied().unwrap_or(0) as i64;
                    (d, size)
                })
                .collect();
            let (deleted, bytes, failed) = self.delete_bytes(&doomed).await;
            self.release(&orphans, &deleted).await?;
            self.report.orphans_deleted += deleted.len() as u64;
            self.report.orphan_bytes_freed += bytes;
            self.report.failures += failed;
        }
        let verb = if self.options.dry_run {
            "would remove"
        } else {
            "removed"
        };
        self.log(format!(
            "step 4/5 done: {verb} {} orphaned objects ({})",
            self.report.orphans_deleted,
            human_bytes(self.report.orphan_bytes_freed)
        ))
        .await;
        Ok(Flow::Done)
    }

    /// Step 5.
    async fn uploads(&mut self) -> Result<(), GcError> {
        if self.options.dry_run {
            self.log("step 5/5: abandoned uploads are not purged in a dry run".into())
                .await;
            return Ok(());
        }
        self.log("step 5/5: purging abandoned uploads".into()).await;
        self.report.uploads_purged = self.registry.purge_abandoned_uploads().await?;
        self.log(format!(
            "step 5/5 done: purged {} abandoned uploads",
            self.report.uploads_purged
        ))
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_wrote_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn a_dry_run_summary_says_would() {
        let report = GcReport {
            dry_run: true,
            blobs_deleted: 3,
            bytes_freed: 2048,
            ..GcReport::default()
        };
        let line = report.summary();
        assert!(
            line.starts_with("would delete 0 untagged artifacts"),
            "{line}"
        );
        assert!(line.contains("3 blobs (2.0 KiB)"), "{line}");
    }
}

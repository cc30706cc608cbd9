//! `wharf check`: does the metadata database agree with the blob store?
//!
//! Meant for after a restore (docs/backup-and-restore.md), when the database
//! dump and the store copy were taken at different moments. It reads both and
//! changes neither:
//!
//! 1. every row of `blobs` has its bytes in the store, of the recorded size
//!    (and, with `--verify-digests`, bytes that hash to the digest);
//! 2. every blob a manifest references has a row (and so, by 1, its bytes),
//!    and every child an index lists is a manifest of the same repository;
//! 3. the store holds no bytes without a row.
//!
//! Failures of 1 and 2 are *inconsistencies*: pulls of the affected artifacts
//! fail. Bytes without a row (3) are harmless, and are exactly what the
//! documented order (database dumped before the store is copied) leaves
//! behind; garbage collection removes them once they are older than its
//! grace period. So only 1 and 2 make the check fail.
//!
//! On a running registry the check is safe and its results stay meaningful:
//! bytes are published before their row is written and deleted only after
//! their row is gone, so a live registry never shows a missing blob, only
//! brief extras.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use sqlx::PgPool;
use wharf_oci::{Digest, DigestHasher};
use wharf_registry::gc::human_bytes;
use wharf_store::{BlobStore, StorageConfig};

use crate::config::Config;
use crate::database::Database;

/// Blob rows and stored objects handled per batch.
const BATCH: i64 = 1000;
/// Store requests in flight at once.
const CONCURRENCY: usize = 16;
/// Findings kept per kind in the report; the counts stay exact beyond it.
const KEEP: usize = 10_000;

/// What to check beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read every blob back and hash it (slow: reads the whole store).
    pub verify_digests: bool,
}

/// A blob row whose bytes are not in the store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MissingBlob {
    pub digest: String,
    pub size: i64,
    /// Artifacts that cannot be pulled because of it (`repo@digest`, and
    /// their tags).
    pub used_by: Vec<String>,
}

/// A blob whose stored bytes have another size than its row says.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SizeMismatch {
    pub digest: String,
    pub recorded: i64,
    pub stored: u64,
}

/// A blob whose stored bytes hash to something else.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CorruptBlob {
    pub digest: String,
    pub actual: String,
}

/// A manifest pointing at a blob without a row, or at a child manifest its
/// repository does not have.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DanglingReference {
    pub repository: String,
    pub manifest: String,
    /// `blob` or `manifest`.
    pub kind: String,
    pub digest: String,
}

/// Bytes in the store that no row records.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExtraObject {
    pub digest: String,
    pub size: u64,
}

/// Everything one check found. `*_count` fields are exact; the lists hold
/// at most the first 10 000 findings of each kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub consistent: bool,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub manifests_checked: u64,
    pub stored_objects: u64,
    pub digests_verified: bool,
    pub missing_count: u64,
    pub missing: Vec<MissingBlob>,
    pub size_mismatch_count: u64,
    pub size_mismatches: Vec<SizeMismatch>,
    pub corrupt_count: u64,
    pub corrupt: Vec<CorruptBlob>,
    pub dangling_count: u64,
    pub dangling: Vec<DanglingReference>,
    pub extra_count: u64,
    pub extra_bytes: u64,
    pub extra: Vec<ExtraObject>,
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// The one-line verdict printed last.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} blob records ({}), {} manifests, {} stored objects: {} missing, \
             {} size mismatches, {} corrupt, {} dangling references; {} extra objects ({}) \
             that garbage collection will remove; {:.1}s",
            if self.consistent {
                "consistent"
            } else {
                "INCONSISTENT"
            },
            self.blobs_checked,
            human_bytes(self.bytes_checked),
            self.manifests_checked,
            self.stored_objects,
            self.missing_count,
            self.size_mismatch_count,
            if self.digests_verified {
                self.corrupt_count.to_string()
            } else {
                "not verified".to_owned()
            },
            self.dangling_count,
            self.extra_count,
            human_bytes(self.extra_bytes),
            self.elapsed_ms as f64 / 1000.0,
        )
    }
}

/// Where findings are printed as they come: stdout, or stderr when stdout
/// carries the JSON report.
#[derive(Debug, Clone, Copy)]
struct Out {
    to_stderr: bool,
}

impl Out {
    fn line(self, line: &str) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

fn keep<T>(list: &mut Vec<T>, item: T) {
    if list.len() < KEEP {
        list.push(item);
    }
}

/// Run the check against the configured database and storage. With `json`
/// the findings go to stderr and the report to stdout as JSON. The report is
/// returned whatever it says; the caller decides the exit status from
/// [`CheckReport::consistent`].
pub async fn run(config: Config, options: CheckOptions, json: bool) -> anyhow::Result<CheckReport> {
    let db = Database::open(&config).await?;
    let result = check_with(&config, db.pool(), options, Out { to_stderr: json }).await;
    db.close().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(report)
}

async fn check_with(
    config: &Config,
    pool: &PgPool,
    options: CheckOptions,
    out: Out,
) -> anyhow::Result<CheckReport> {
    if let StorageConfig::Filesystem { root } = &config.storage {
        // Opening a missing root would create an empty store and report every
        // blob missing; a wrong path is the likelier mistake.
        anyhow::ensure!(
            root.is_dir(),
            "the storage directory {} does not exist: is data_dir (or storage.root) right?",
            root.display()
        );
    }
    let store = BlobStore::from_config(&config.storage)
        .await
        .context("cannot open blob storage")?;
    check(pool, &store, options, out).await
}

async fn check(
    pool: &PgPool,
    store: &BlobStore,
    options: CheckOptions,
    out: Out,
) -> anyhow::Result<CheckReport> {
    let started = Instant::now();
    let mut report = CheckReport {
        digests_verified: options.verify_digests,
        ..CheckReport::default()
    };
    out.line(&format!(
        "checking blob records against the {} store{}",
        store.backend_name(),
        if options.verify_digests {
            ", hashing every blob"
        } else {
            ""
        }
    ));
    check_rows(pool, store, options, out, &mut report).await?;
    check_references(pool, out, &mut report).await?;
    check_extras(pool, store, out, &mut report).await?;
    report.consistent = report.missing_count == 0
        && report.size_mismatch_count == 0
        && report.corrupt_count == 0
        && report.dangling_count == 0;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    out.line(&report.summary());
    Ok(report)
}

/// What the store says about one blob row.
enum Found {
    Fine,
    Missing,
    Size(u64),
    Corrupt(String),
}

/// Step 1: every row has its bytes.
async fn check_rows(
    pool: &PgPool,
    store: &BlobStore,
    options: CheckOptions,
    out: Out,
    report: &mut CheckReport,
) -> anyhow::Result<()> {
    let mut after = String::new();
    loop {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
        )
        .bind(&after)
        .bind(BATCH)
        .fetch_all(pool)
        .await
        .context("cannot read the blob records")?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = last.clone();
        let found: Vec<(String, i64, Found)> = futures_util::stream::iter(rows)
            .map(|(digest, size)| async move {
                let found = inspect(store, &digest, size, options.verify_digests).await;
                found.map(|f| (digest, size, f))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut missing = Vec::new();
        for (digest, size, found) in found {
            report.blobs_checked += 1;
            report.bytes_checked += size.max(0) as u64;
            match found {
                Found::Fine => {}
                Found::Missing => {
                    report.missing_count += 1;
                    missing.push((digest, size));
                }
                Found::Size(stored) => {
                    out.line(&format!(
                        "SIZE MISMATCH {digest}: recorded {size} bytes, the store has {stored}"
                    ));
                    report.size_mismatch_count += 1;
                    keep(
                        &mut report.size_mismatches,
                        SizeMismatch {
                            digest,
                            recorded: size,
                            stored,
                        },
                    );
                }
                Found::Corrupt(actual) => {
                    out.line(&format!(
                        "CORRUPT {digest}: the stored bytes hash to {actual}"
                    ));
                    report.corrupt_count += 1;
                    keep(&mut report.corrupt, CorruptBlob { digest, actual });
                }
            }
        }
        if !missing.is_empty() {
            let digests: Vec<String> = missing.iter().map(|(d, _)| d.clone()).collect();
            let users = used_by(pool, &digests).await?;
            for (digest, size) in missing {
                let used = users
                    .iter()
                    .filter(|(d, _)| *d == digest)
                    .map(|(_, artifact)| artifact.clone())
                    .collect::<Vec<_>>();
                out.line(&format!(
                    "MISSING {digest} ({}): no bytes in the store{}",
                    human_bytes(size.max(0) as u64),
                    if used.is_empty() {
                        "; no manifest uses it".to_owned()
                    } else {
                        format!("; needed by {}", used.join(", "))
                    }
                ));
                keep(
                    &mut report.missing,
                    MissingBlob {
                        digest,
                        size,
                        used_by: used,
                    },
                );
            }
        }
    }
    Ok(())
}

async fn inspect(
    store: &BlobStore,
    digest: &str,
    size: i64,
    verify: bool,
) -> anyhow::Result<Found> {
    let parsed = Digest::parse(digest)
        .with_context(|| format!("the blob record {digest:?} is not a valid digest"))?;
    let stored = store
        .stat(&parsed)
        .await
        .with_context(|| format!("cannot look up {digest} in the store"))?;
    let Some(stored) = stored else {
        return Ok(Found::Missing);
    };
    if i64::try_from(stored) != Ok(size) {
        return Ok(Found::Size(stored));
    }
    if verify {
        let body = store
            .get(&parsed, None)
            .await
            .with_context(|| format!("cannot read {digest} from the store"))?;
        let mut hasher = DigestHasher::new(parsed.algorithm());
        let mut stream = body.stream;
        while let Some(chunk) = stream
            .try_next()
            .await
            .with_context(|| format!("cannot read {digest} from the store"))?
        {
            hasher.update(&chunk);
        }
        let actual = hasher.finalize();
        if actual != parsed {
            return Ok(Found::Corrupt(actual.to_string()));
        }
    }
    Ok(Found::Fine)
}

/// `(digest, "repo@manifest (tags a, b)")` for every manifest that is or
/// references one of `digests`.
async fn used_by(pool: &PgPool, digests: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "WITH hit AS (
            SELECT mr.digest AS wanted, mr.manifest_id FROM manifest_references mr
             WHERE mr.digest = ANY($1)
            UNION
            SELECT m.digest, m.id FROM manifests m WHERE m.digest = ANY($1)
         )
         SELECT h.wanted, r.name, m.digest,
                (SELECT string_agg(t.name, ', ' ORDER BY t.name) FROM tags t
                  WHERE t.manifest_id = m.id)
           FROM hit h
           JOIN manifests m ON m.id = h.manifest_id
           JOIN repositories r ON r.id = m.repository_id
          ORDER BY h.wanted, r.name, m.digest",
    )
    .bind(digests)
    .fetch_all(pool)
    .await
    .context("cannot look up the manifests using missing blobs")?;
    Ok(rows
        .into_iter()
        .map(|(wanted, repo, manifest, tags)| {
            let artifact = match tags {
                Some(tags) => format!("{repo}@{manifest} (tags {tags})"),
                None => format!("{repo}@{manifest}"),
            };
            (wanted, artifact)
        })
        .collect())
}

/// Step 2: every reference of every manifest resolves.
async fn check_references(pool: &PgPool, out: Out, report: &mut CheckReport) -> anyhow::Result<()> {
    let (manifests,): (i64,) = sqlx::query_as("SELECT count(*) FROM manifests")
        .fetch_one(pool)
        .await
        .context("cannot count manifests")?;
    report.manifests_checked = manifests.max(0) as u64;
    // One pass over the references; the anti-joins use the primary keys of
    // `blobs` and of `manifests (repository_id, digest)`.
    let mut rows = sqlx::query_as::<_, (String, String, String, String)>(
        "SELECT r.name, m.digest, mr.kind, mr.digest
           FROM manifest_references mr
           JOIN manifests m ON m.id = mr.manifest_id
           JOIN repositories r ON r.id = m.repository_id
          WHERE (mr.kind = 'blob'
                 AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = mr.digest))
             OR (mr.kind = 'manifest'
                 AND NOT EXISTS (SELECT 1 FROM manifests c
                                  WHERE c.repository_id = m.repository_id
                                    AND c.digest = mr.digest))
          ORDER BY r.name, m.digest, mr.kind, mr.digest",
    )
    .fetch(pool);
    while let Some((repository, manifest, kind, digest)) = rows
        .try_next()
        .await
        .context("cannot read manifest references")?
    {
        let what = if kind == "blob" {
            "a blob with no record"
        } else {
            "a child manifest its repository does not have"
        };
        out.line(&format!(
            "DANGLING {repository}@{manifest} references {what}: {digest}"
        ));
        report.dangling_count += 1;
        keep(
            &mut report.dangling,
            DanglingReference {
                repository,
                manifest,
                kind,
                digest,
            },
        );
    }
    Ok(())
}

/// Step 3: bytes in the store without a row.
async fn check_extras(
    pool: &PgPool,
    store: &BlobStore,
    out: Out,
    report: &mut CheckReport,
) -> anyhow::Result<()> {
    let mut listing = store.list_blobs().try_chunks(BATCH as usize);
    while let Some(chunk) = listing
        .try_next()
        .await
        .map_err(|e| e.1)
        .context("cannot list the blob store")?
    {
        report.stored_objects += chunk.len() as u64;
        let digests: Vec<String> = chunk.iter().map(|b| b.digest.to_string()).collect();
        let without: HashSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT d FROM unnest($1::text[]) AS d
              WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = d)",
        )
        .bind(&digests)
        .fetch_all(pool)
        .await
        .context("cannot look up stored objects")?
        .into_iter()
        .collect();
        for blob in chunk
            .into_iter()
            .filter(|b| without.contains(&b.digest.to_string()))
        {
            out.line(&format!(
                "EXTRA {} ({}): bytes without a record",
                blob.digest,
                human_bytes(blob.size)
            ));
            report.extra_count += 1;
            report.extra_bytes += blob.size;
            keep(
                &mut report.extra,
                ExtraObject {
                    digest: blob.digest.to_string(),
                    size: blob.size,
                },
            );
        }
    }
    Ok(())
}

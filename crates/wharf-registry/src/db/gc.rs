//! Garbage collection's queries. Each "what is garbage" rule is written once
//! (the `*_unneeded!` fragments) and used both to find candidates and to check
//! them again under their locks, so the check that decides a deletion is the
//! one that found it.
//!
//! Candidates are found in key order, a batch at a time, and each one is
//! checked with index probes: every correlated `NOT EXISTS` ends in
//! `OFFSET 0`, which keeps PostgreSQL from turning it into an anti join that
//! (with a generic plan) scans a whole index from its start for every batch.
//! So a batch costs the same at the start of the keyspace and at its end.
//!
//! Every query reads the session's temporary table `gc_doomed`: the manifests
//! a dry run counts as deleted (empty in a real run, where they really are
//! deleted), so a dry run reports what a real run would remove.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// First key of the run lock (second key 0): one collection at a time per
/// database, whichever replica or `wharf gc` runs it.
const GC_RUN_LOCK_CLASS: i32 = 0x0b10_b0c0;

/// `m` (a manifest) is not counted as deleted by the dry run.
macro_rules! live {
    () => {
        "NOT EXISTS (SELECT 1 FROM gc_doomed d WHERE d.id = m.id)"
    };
}

/// Manifest `c` may go with `delete_untagged`: pushed before the cutoff, no
/// tag, no index in its repository lists it, and it is not an accessory of
/// a manifest that stays (accessories live and die with their subject).
macro_rules! untagged_unneeded {
    () => {
        concat!(
            "c.created_at < $1
             AND NOT EXISTS (SELECT 1 FROM gc_doomed d WHERE d.id = c.id)
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = c.id OFFSET 0)
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                               JOIN manifests m ON m.id = mr.manifest_id
                              WHERE mr.kind = 'manifest' AND mr.digest = c.digest
                                AND m.repository_id = c.repository_id AND ",
            live!(),
            " OFFSET 0)
             AND (c.subject_digest IS NULL
                  OR NOT EXISTS (SELECT 1 FROM manifests m
                                  WHERE m.repository_id = c.repository_id
                                    AND m.digest = c.subject_digest AND ",
            live!(),
            " OFFSET 0))"
        )
    };
}

/// Link `rb` may go: made before the cutoff, and no manifest of its
/// repository is that blob or references it.
macro_rules! link_unneeded {
    () => {
        concat!(
            "rb.created_at < $1
             AND NOT EXISTS (SELECT 1 FROM manifests m
                              WHERE m.repository_id = rb.repository_id AND m.digest = rb.digest
                                AND ",
            live!(),
            " OFFSET 0)
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                               JOIN manifests m ON m.id = mr.manifest_id
                              WHERE mr.digest = rb.digest AND m.repository_id = rb.repository_id
                                AND ",
            live!(),
            " OFFSET 0)"
        )
    };
}

/// Blob `b` may go: recorded before the cutoff, no manifest anywhere is it or
/// references it, and no repository linked it after the cutoff. (Older links
/// left are unneeded by `link_unneeded!` and go with it.)
macro_rules! blob_unneeded {
    () => {
        concat!(
            "b.created_at < $1
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                               JOIN manifests m ON m.id = mr.manifest_id
                              WHERE mr.digest = b.digest AND ",
            live!(),
            " OFFSET 0)
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest AND ",
            live!(),
            " OFFSET 0)
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
                              WHERE rb.digest = b.digest AND rb.created_at >= $1 OFFSET 0)"
        )
    };
}

/// Take the run lock for this session; false if another collection holds it.
pub async fn try_lock_run(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, 0)")
        .bind(GC_RUN_LOCK_CLASS)
        .fetch_one(conn)
        .await
}

/// Create (or empty) this session's `gc_doomed` table.
pub async fn prepare(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("CREATE TEMPORARY TABLE IF NOT EXISTS gc_doomed (id BIGINT PRIMARY KEY)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("TRUNCATE gc_doomed").execute(conn).await?;
    Ok(())
}

/// The database's "now" minus the grace period: anything recorded at or
/// after it is left alone by this run.
pub async fn cutoff(conn: &mut PgConnection, grace_secs: u64) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT now() - make_interval(secs => $1)")
        .bind(grace_secs as f64)
        .fetch_one(conn)
        .await
}

/// An untagged manifest that may be deleted.
#[derive(Debug, sqlx::FromRow)]
pub struct Untagged {
    pub id: i64,
    pub repository_id: i64,
    pub repository: String,
    pub digest: String,
    pub size: i64,
}

/// Untagged manifests with an id above `after`, in id order.
pub async fn untagged(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<Untagged>> {
    sqlx::query_as(concat!(
        "SELECT c.id, c.repository_id, r.name AS repository, c.digest, c.size
           FROM manifests c JOIN repositories r ON r.id = c.repository_id
          WHERE c.id > $2 AND ",
        untagged_unneeded!(),
        " ORDER BY c.id LIMIT $3"
    ))
    .bind(cutoff)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Dry run: count these manifests as deleted for the rest of the run.
pub async fn doom(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO gc_doomed SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inside the deleting transaction: lock manifest `id` against new tags
/// (a tag's foreign key check takes a share lock on the row, which this
/// waits for), then check, in a statement that sees what those committed,
/// that it is still untagged and unneeded.
pub async fn lock_if_still_untagged(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    id: i64,
) -> sqlx::Result<bool> {
    let row: Option<i64> = sqlx::query_scalar("SELECT id FROM manifests WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        return Ok(false);
    }
    sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM manifests c WHERE c.id = $2 AND ",
        untagged_unneeded!(),
        ")"
    ))
    .bind(cutoff)
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Unneeded links after `(repository_id, digest)`, in key order.
pub async fn unneeded_links(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    after: (i64, &str),
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(concat!(
        "SELECT rb.repository_id, rb.digest FROM repository_blobs rb
          WHERE (rb.repository_id, rb.digest) > ($2, $3) AND ",
        link_unneeded!(),
        " ORDER BY rb.repository_id, rb.digest LIMIT $4"
    ))
    .bind(cutoff)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Delete those of `links` that are still unneeded; the caller holds their
/// digests' exclusive locks. Returns how many went.
pub async fn unlink(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    links: &[(i64, String)],
) -> sqlx::Result<u64> {
    let (repositories, digests): (Vec<i64>, Vec<String>) = links.iter().cloned().unzip();
    let done = sqlx::query(concat!(
        "DELETE FROM repository_blobs rb
          WHERE (rb.repository_id, rb.digest) IN
                (SELECT * FROM unnest($2::bigint[], $3::text[]))
            AND ",
        link_unneeded!()
    ))
    .bind(cutoff)
    .bind(&repositories)
    .bind(&digests)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Unneeded blobs (digest, size) after `after`, in digest order.
pub async fn unneeded_blobs(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(concat!(
        "SELECT b.digest, b.size FROM blobs b WHERE b.digest > $2 AND ",
        blob_unneeded!(),
        " ORDER BY b.digest LIMIT $3"
    ))
    .bind(cutoff)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Delete the rows (links, then the blob) of those of `digests` that are
/// still unneeded; the caller holds their exclusive locks and runs this in a
/// transaction. Returns the blobs deleted with their sizes.
pub async fn delete_blobs(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    digests: &[String],
) -> sqlx::Result<Vec<(String, i64)>> {
    let doomed: Vec<(String, i64)> = sqlx::query_as(concat!(
        "SELECT b.digest, b.size FROM blobs b WHERE b.digest = ANY($2) AND ",
        blob_unneeded!(),
        " ORDER BY b.digest FOR UPDATE OF b"
    ))
    .bind(cutoff)
    .bind(digests)
    .fetch_all(&mut *conn)
    .await?;
    if doomed.is_empty() {
        return Ok(doomed);
    }
    let names: Vec<&str> = doomed.iter().map(|(d, _)| d.as_str()).collect();
    sqlx::query("DELETE FROM repository_blobs WHERE digest = ANY($1)")
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM blobs WHERE digest = ANY($1)")
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    Ok(doomed)
}

/// Those of `digests` with no row in `blobs`.
pub async fn without_rows(
    conn: &mut PgConnection,
    digests: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT d FROM unnest($1::text[]) AS d
          WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = d)",
    )
    .bind(digests)
    .fetch_all(conn)
    .await
}

/// Those of `digests` with a row in `blobs`.
pub async fn with_rows(pool: &sqlx::PgPool, digests: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT digest FROM blobs WHERE digest = ANY($1)")
        .bind(digests)
        .fetch_all(pool)
        .await
}

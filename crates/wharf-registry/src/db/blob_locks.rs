//! Per-digest advisory locks between writers and garbage collection.
//!
//! Anything that makes a blob's bytes reachable — publishing an upload,
//! mounting a blob, a manifest referencing blobs — holds a *shared* lock on
//! each digest for the rest of its transaction. Garbage collection deletes a
//! blob only while holding the *exclusive* lock on it, after checking again,
//! under that lock, that nothing references it. So either the writer commits
//! first and the collector sees the reference, or the collector deletes first
//! and the writer finds the blob gone (and the client uploads it again):
//! never a committed reference to deleted bytes.
//!
//! The locks use PostgreSQL's two-key form with a class of their own, which
//! never collides with single-key advisory locks (migrations, the job queue).

use sqlx::PgConnection;

/// The first key of every blob lock.
const BLOB_LOCK_CLASS: i32 = 0x0b10_b000;

/// Take shared locks on `digests` until the transaction ends (in digest
/// order, so concurrent writers never wait on each other in a cycle).
pub async fn share(conn: &mut PgConnection, digests: &[String]) -> sqlx::Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared($1, hashtext(d))
           FROM (SELECT DISTINCT unnest($2::text[]) AS d ORDER BY 1) AS digests",
    )
    .bind(BLOB_LOCK_CLASS)
    .bind(digests)
    .execute(conn)
    .await?;
    Ok(())
}

/// Take the exclusive lock on `digest` until the transaction ends; waits for
/// every writer holding it shared.
pub async fn exclusive(conn: &mut PgConnection, digest: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(BLOB_LOCK_CLASS)
        .bind(digest)
        .execute(conn)
        .await?;
    Ok(())
}

/// Take the exclusive locks on `digests` until the transaction ends (in
/// digest order, like writers, so neither side waits on the other in a cycle).
pub async fn exclusive_all(conn: &mut PgConnection, digests: &[String]) -> sqlx::Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, hashtext(d))
           FROM (SELECT DISTINCT unnest($2::text[]) AS d ORDER BY 1) AS digests",
    )
    .bind(BLOB_LOCK_CLASS)
    .bind(digests)
    .execute(conn)
    .await?;
    Ok(())
}

/// Take the exclusive locks on `digests` for the session: they outlive the
/// transactions run meanwhile, until [`release_session`] or the connection
/// closes. Garbage collection holds them across the commit that deletes a
/// blob's rows *and* the deletion of its bytes, so no upload can publish the
/// same digest in between. On error the connection must be closed: some of
/// the locks may be held.
pub async fn exclusive_session(conn: &mut PgConnection, digests: &[String]) -> sqlx::Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_lock($1, hashtext(d))
           FROM (SELECT DISTINCT unnest($2::text[]) AS d ORDER BY 1) AS digests",
    )
    .bind(BLOB_LOCK_CLASS)
    .bind(digests)
    .execute(conn)
    .await?;
    Ok(())
}

/// Release session locks taken by [`exclusive_session`] with the same
/// `digests`. Succeeding also proves the session, and so every lock it
/// held, lived until now.
pub async fn release_session(conn: &mut PgConnection, digests: &[String]) -> sqlx::Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_unlock($1, hashtext(d))
           FROM (SELECT DISTINCT unnest($2::text[]) AS d ORDER BY 1) AS digests",
    )
    .bind(BLOB_LOCK_CLASS)
    .bind(digests)
    .execute(conn)
    .await?;
    Ok(())
}

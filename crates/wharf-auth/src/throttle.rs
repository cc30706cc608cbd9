//! Failed-login throttling, shared by every replica through the
//! `login_failures` table.
//!
//! Two keys count failures: `user:<name>` (one account guessed at from many
//! places) and `addr:<ip>` (one place guessing at many accounts). Failures
//! count inside a window; the one that reaches the limit locks the key for
//! the lockout period and restarts its count. A locked key is checked before
//! any password is verified, so a locked account costs no hashing and says
//! nothing about whether the password was right. All times are the
//! database's, so replicas with skewed clocks agree.

use sqlx::PgPool;

use crate::config::ThrottleConfig;
use crate::error::AuthError;

/// The key counting failures for a login name.
pub(crate) fn user_key(name: &str) -> String {
    format!("user:{name}")
}

/// The key counting failures from a client address.
pub(crate) fn address_key(addr: &str) -> String {
    format!("addr:{addr}")
}

/// Seconds until the last of `keys` is unlocked, if any is locked now.
pub(crate) async fn locked(pool: &PgPool, keys: &[String]) -> Result<Option<u64>, AuthError> {
    let wait: Option<i64> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM max(locked_until) - now()))::bigint
         FROM login_failures WHERE key = ANY($1) AND locked_until > now()",
    )
    .bind(keys)
    .fetch_one(pool)
    .await?;
    Ok(wait.map(|secs| u64::try_from(secs).unwrap_or(0).max(1)))
}

/// Count a failure against `key` with `limit` failures allowed per window.
/// Returns whether this failure started a lock.
pub(crate) async fn record_failure(
    pool: &PgPool,
    config: &ThrottleConfig,
    key: &str,
    limit: u32,
) -> Result<bool, AuthError> {
    // `counted` is the failure count including this one: 1 when the window
    // has passed, one more otherwise. Reaching the limit locks the key and
    // resets the count to 0, which is how the caller learns a lock began.
    let started: bool = sqlx::query_scalar(
        "INSERT INTO login_failures AS f (key, failures, window_start, locked_until)
         VALUES ($1,
                 CASE WHEN $2 <= 1 THEN 0 ELSE 1 END,
                 now(),
                 CASE WHEN $2 <= 1 THEN now() + make_interval(secs => $4) END)
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE
                 WHEN (CASE WHEN f.window_start <= now() - make_interval(secs => $3)
                            THEN 1 ELSE f.failures + 1 END) >= $2 THEN 0
                 ELSE (CASE WHEN f.window_start <= now() - make_interval(secs => $3)
                            THEN 1 ELSE f.failures + 1 END)
             END,
             window_start = CASE
                 WHEN f.window_start <= now() - make_interval(secs => $3)
                      OR f.failures + 1 >= $2 THEN now()
                 ELSE f.window_start
             END,
             locked_until = CASE
                 WHEN (CASE WHEN f.window_start <= now() - make_interval(secs => $3)
                            THEN 1 ELSE f.failures + 1 END) >= $2
                      THEN now() + make_interval(secs => $4)
                 ELSE f.locked_until
             END
         RETURNING failures = 0",
    )
    .bind(key)
    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
    .bind(config.window_secs as f64)
    .bind(config.lockout_secs as f64)
    .fetch_one(pool)
    .await?;
    Ok(started)
}

/// Forget the failures counted against `key` (after a successful login).
pub(crate) async fn clear(pool: &PgPool, key: &str) -> Result<(), AuthError> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Remove counters that are neither locked nor inside their window.
pub(crate) async fn purge_stale(pool: &PgPool, config: &ThrottleConfig) -> Result<u64, AuthError> {
    let done = sqlx::query(
        "DELETE FROM login_failures
         WHERE window_start < now() - make_interval(secs => $1)
           AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind(config.window_secs as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

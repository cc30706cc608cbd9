//! Short-lived answers about accounts and projects, so a `/v2` request with a
//! token costs at most one cheap query per subject (and per project) per
//! recheck period, yet a deleted user or a disabled robot loses access within
//! that period instead of at token expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;

use crate::error::AuthError;

/// Past this many entries, expired ones are swept on insert.
const SWEEP_AT: usize = 4096;

/// A map whose entries are forgotten `ttl` after they were stored.
pub(crate) struct Recent<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Recent<V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Recent {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    pub(crate) fn put(&self, key: &str, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= SWEEP_AT {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            entries.insert(key.to_owned(), (value, Instant::now()));
        }
    }
}

/// Whether the user or robot a token names still exists and may sign in.
/// The anonymous subject `""` always may.
pub(crate) async fn subject_is_active(
    pool: &PgPool,
    robot_prefix: &str,
    sub: &str,
) -> Result<bool, AuthError> {
    if sub.is_empty() || sub == crate::SERVICE_SUBJECT {
        return Ok(true);
    }
    if let Some(name) = sub.strip_prefix(robot_prefix) {
        return match wharf_projects::robots::get_robot_by_name(pool, name).await {
            Ok(robot) => Ok(!robot.disabled && !robot.is_expired(Utc::now())),
            Err(wharf_projects::Error::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        };
    }
    match wharf_projects::get_user_by_name(pool, sub).await {
        Ok(_) => Ok(true),
        Err(wharf_projects::Error::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// When the live project `name` was created (seconds since the epoch), or
/// `None` if there is no such project.
pub(crate) async fn project_created(pool: &PgPool, name: &str) -> Result<Option<i64>, AuthError> {
    match wharf_projects::get_project_by_name(pool, name).await {
        Ok(project) => Ok(Some(project.created_at.timestamp())),
        Err(wharf_projects::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

//! The metadata database: a configured PostgreSQL, or the embedded one.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Config;
use crate::embedded_postgres::{EmbeddedPostgres, EmbeddedPostgresError};

/// Every migration of the workspace, embedded at build time from `migrations/`.
///
/// Several replicas may start at once: `Migrator::run` takes a PostgreSQL advisory
/// lock (`pg_advisory_lock`) for the whole run, so one replica migrates while the
/// others wait and then find nothing left to do. That depends on `locking`, which
/// defaults to on; nothing here turns it off (a test checks).
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("database.url must start with postgres:// or postgresql://")]
    Scheme,
    #[error("database.url is not a valid PostgreSQL URL")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect { target: String, source: sqlx::Error },
    #[error(transparent)]
    Embedded(#[from] EmbeddedPostgresError),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// An open connection pool, plus the embedded cluster when Wharf runs its own.
/// Call [`Database::close`] when done; dropping also stops the embedded cluster.
pub struct Database {
    pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

/// Whether `host` is this machine (a name, an address or a socket directory).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.starts_with('/')
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Database {
    /// Connect to `database.url`, or start the embedded cluster when it is unset.
    /// Start-up retries for `database.connect_timeout_secs` while the server is
    /// unreachable (a database container still starting), not on wrong credentials.
    pub async fn open(config: &Config) -> Result<Self, DatabaseError> {
        let db = &config.database;
        let (options, embedded, target) = match &db.url {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(DatabaseError::Scheme);
                }
                let mut options = PgConnectOptions::from_str(url).map_err(DatabaseError::Url)?;
                if is_loopback(options.get_host()) && !url.contains("sslmode=") {
                    // TLS to a server on this host protects nothing, and
                    // costs: sqlx leaves Nagle's algorithm on, so a statement
                    // with more than one TLS record of parameters (a large
                    // manifest, a batch) waits ~40 ms for a delayed ACK. An
                    // explicit `sslmode` in the URL still wins.
                    options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
                }
                let target = format!(
                    "{}:{}/{}",
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or("")
                );
                (options, None, target)
            }
            None => {
                let embedded =
                    EmbeddedPostgres::start(&config.data_dir, db.postgres_bin_dir.as_deref())
                        .await?;
                let target = format!("the embedded PostgreSQL in {}", embedded.dir().display());
                (embedded.connect_options(), Some(embedded), target)
            }
        };
        let options = options.application_name("wharf");
        let timeout = Duration::from_secs(db.connect_timeout_secs);
        match connect(options, db.max_connections, timeout).await {
            Ok(pool) => Ok(Self { pool, embedded }),
            Err(source) => {
                if let Some(embedded) = embedded {
                    embedded.stop().await;
                }
                Err(DatabaseError::Connect { target, source })
            }
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending migrations (under the advisory lock, see [`MIGRATOR`]).
    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        let started = Instant::now();
        MIGRATOR.run(&self.pool).await?;
        tracing::info!(
            known = MIGRATOR.iter().count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database migrations applied"
        );
        Ok(())
    }

    /// Close the pool, then stop the embedded cluster if there is one.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(embedded) = self.embedded {
            embedded.stop().await;
        }
    }
}

/// Per-attempt limit, for hosts that drop packets instead of refusing.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(
    options: PgConnectOptions,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    let deadline = Instant::now() + timeout;
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ATTEMPT_TIMEOUT);
    loop {
        // One plain connection first: the pool would report any failure as
        // "pool timed out" and hide the cause (refused, bad password, no database).
        let attempt =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    pool_options.clone().connect_with(options.clone()).await
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            };
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if is_transient(&e) && Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Errors worth waiting out: the server is not (yet) there or is still starting.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03 cannot_connect_now: starting up, shutting down or in recovery.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_counts_as_loopback() {
        for local in [
            "localhost",
            "127.0.0.1",
            "127.0.0.53",
            "::1",
            "[::1]",
            "/run/postgresql",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["db.internal", "10.0.0.5", "::ffff:10.0.0.5", "postgres"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }

    #[test]
    fn migrations_take_the_advisory_lock() {
        assert!(
            MIGRATOR.locking,
            "replicas starting together rely on the migration lock"
        );
    }

    #[tokio::test]
    async fn a_malformed_url_is_reported_without_connecting() {
        let mut config = Config::default();
        config.database.url = Some("mysql://x".into());
        let err = Database::open(&config).await.err().expect("must fail");
        assert!(matches!(err, DatabaseError::Scheme), "{err}");
    }
}

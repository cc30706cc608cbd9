//! Replication endpoints stored in PostgreSQL, with their secret sealed
//! (see [`crate::crypto`]) and their health as the last ping found it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::client::{Endpoint, RegistryClient, ReplicationError};
use crate::crypto::SecretKey;

/// Harbor's adapter types this crate speaks: all through the Docker
/// Registry v2 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    DockerRegistry,
    Harbor,
    Wharf,
}

impl RegistryKind {
    pub const ALL: [RegistryKind; 3] = [Self::DockerRegistry, Self::Harbor, Self::Wharf];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DockerRegistry => "docker-registry",
            Self::Harbor => "harbor",
            Self::Wharf => "wharf",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ReplicationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ReplicationError::Invalid(format!(
                    "unsupported registry type {s:?}: use docker-registry, harbor or wharf"
                ))
            })
    }
}

/// A registry to create or the new state of one to update.
#[derive(Debug, Clone)]
pub struct RegistrySpec {
    pub name: String,
    pub kind: RegistryKind,
    pub url: String,
    pub description: String,
    /// Username; `None` for anonymous access.
    pub access_key: Option<String>,
    /// Password or token. On update, `None` keeps the stored one.
    pub access_secret: Option<String>,
    pub insecure: bool,
}

/// A stored registry as the API shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegistryRecord {
    pub id: i64,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub url: String,
    pub description: String,
    pub access_key: Option<String>,
    pub insecure: bool,
    pub status: String,
    pub status_message: String,
    pub status_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, type, url, description, access_key, insecure, status, \
                       status_message, status_checked_at, created_at, updated_at";

/// How this process reaches its own Wharf's `/v2`: the local side of push-
/// and pull-based policies (Harbor's registry 0, "Local").
pub trait LocalRegistry: Send + Sync {
    fn client(&self) -> Result<RegistryClient, ReplicationError>;
}

/// The registries table and the key its secrets are sealed with.
#[derive(Clone)]
pub struct Registries {
    pool: PgPool,
    key: Arc<SecretKey>,
    local: Option<Arc<dyn LocalRegistry>>,
}

impl Registries {
    pub fn new(pool: PgPool, key: Arc<SecretKey>) -> Self {
        Self {
            pool,
            key,
            local: None,
        }
    }

    /// Lets policies use this Wharf as their source or destination.
    pub fn with_local(mut self, local: Arc<dyn LocalRegistry>) -> Self {
        self.local = Some(local);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A client for registry `id`, or for this Wharf when `id` is `None`;
    /// `Ok(None)` when no registry has that id.
    pub async fn client_for(
        &self,
        id: Option<i64>,
    ) -> Result<Option<RegistryClient>, ReplicationError> {
        match id {
            Some(id) => self.client(id).await,
            None => match &self.local {
                Some(local) => local.client().map(Some),
                None => Err(ReplicationError::Invalid(
                    "this process cannot reach the local Wharf registry: set \
                     replication.local_url (WHARF_REPLICATION_LOCAL_URL) to this Wharf's URL"
                        .into(),
                )),
            },
        }
    }

    fn validate(spec: &RegistrySpec) -> Result<(), ReplicationError> {
        if spec.name.trim().is_empty() {
            return Err(ReplicationError::Invalid(
                "registry name must not be empty".into(),
            ));
        }
        Endpoint::new(&spec.url).map(|_| ())
    }

    pub async fn create(&self, spec: &RegistrySpec) -> Result<RegistryRecord, ReplicationError> {
        Self::validate(spec)?;
        let sealed = spec.access_secret.as_deref().map(|s| self.key.seal(s));
        let sql = format!(
            "INSERT INTO replication_registries \
             (name, type, url, description, access_key, access_secret, insecure) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        sqlx::query_as::<_, RegistryRecord>(sqlx::AssertSqlSafe(sql))
            .bind(&spec.name)
            .bind(spec.kind.as_str())
            .bind(spec.url.trim_end_matches('/'))
            .bind(&spec.description)
            .bind(&spec.access_key)
            .bind(sealed)
            .bind(spec.insecure)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => ReplicationError::Invalid(
                    format!("a registry named {:?} already exists", spec.name),
                ),
                _ => ReplicationError::Database(e),
            })
    }

    pub async fn get(&self, id: i64) -> Result<Option<RegistryRecord>, ReplicationError> {
        let sql = format!("SELECT {COLUMNS} FROM replication_registries WHERE id = $1");
        sqlx::query_as::<_, RegistryRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(ReplicationError::Database)
    }

    pub async fn list(&self) -> Result<Vec<RegistryRecord>, ReplicationError> {
        let sql = format!("SELECT {COLUMNS} FROM replication_registries ORDER BY id");
        sqlx::query_as::<_, RegistryRecord>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(ReplicationError::Database)
    }

    /// Replace the registry's settings; the secret stays unless a new one is given.
    pub async fn update(
        &self,
        id: i64,
        spec: &RegistrySpec,
    ) -> Result<Option<RegistryRecord>, ReplicationError> {
        Self::validate(spec)?;
        let sealed = spec.access_secret.as_deref().map(|s| self.key.seal(s));
        let sql = format!(
            "UPDATE replication_registries SET name = $2, type = $3, url = $4, description = $5, \
             access_key = $6, access_secret = CASE WHEN $6::text IS NULL THEN NULL \
             ELSE COALESCE($7, access_secret) END, insecure = $8, updated_at = now() \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        sqlx::query_as::<_, RegistryRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(&spec.name)
            .bind(spec.kind.as_str())
            .bind(spec.url.trim_end_matches('/'))
            .bind(&spec.description)
            .bind(&spec.access_key)
            .bind(sealed)
            .bind(spec.insecure)
            .fetch_optional(&self.pool)
            .await
            .map_err(ReplicationError::Database)
    }

    pub async fn delete(&self, id: i64) -> Result<bool, ReplicationError> {
        let done = sqlx::query("DELETE FROM replication_registries WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(ReplicationError::Database)?;
        Ok(done.rows_affected() == 1)
    }

    /// A client for the stored registry, its secret opened with the key.
    pub async fn client(&self, id: i64) -> Result<Option<RegistryClient>, ReplicationError> {
        let row: Option<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
            "SELECT url, access_key, access_secret, insecure FROM replication_registries WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(ReplicationError::Database)?;
        let Some((url, key, secret, insecure)) = row else {
            return Ok(None);
        };
        let mut endpoint = Endpoint::new(&url)?.insecure(insecure);
        if let Some(user) = key {
            let password = secret
                .map(|s| self.key.open(&s))
                .transpose()?
                .unwrap_or_default();
            endpoint = endpoint.with_basic(&user, &password);
        }
        RegistryClient::new(endpoint).map(Some)
    }

    /// Ping the registry and record its health; `Ok(None)` if it does not
    /// exist, otherwise the new status.
    pub async fn ping(&self, id: i64) -> Result<Option<RegistryRecord>, ReplicationError> {
        let Some(client) = self.client(id).await? else {
            return Ok(None);
        };
        let (status, message) = match client.ping().await {
            Ok(()) => ("healthy", String::new()),
            Err(e) => ("unhealthy", e.to_string()),
        };
        let sql = format!(
            "UPDATE replication_registries SET status = $2, status_message = $3, \
             status_checked_at = now() WHERE id = $1 RETURNING {COLUMNS}"
        );
        sqlx::query_as::<_, RegistryRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(status)
            .bind(message)
            .fetch_optional(&self.pool)
            .await
            .map_err(ReplicationError::Database)
    }
}

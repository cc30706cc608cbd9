//! Wharf's configuration: one `Config` built in layers.
//!
//! Precedence, lowest first: built-in defaults → the TOML file (`--config` /
//! `WHARF_CONFIG`) → `WHARF_*` environment variables → command-line flags.
//!
//! The layers are merged as TOML tables before anything is deserialized, so every
//! layer speaks the same key names (`storage.bucket`, `log.format`, …) and the
//! final shape is checked once by serde. Environment variables map to keys through
//! [`ENV_VARS`], an explicit table (no guessing from names), which is also what
//! `docs/configuration.md` documents.
//!
//! Secrets (the password in `database.url`, S3 secret keys) never print: `Debug`
//! and `Display` both go through [`Config::redacted`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};
use wharf_auth::AuthConfig;
use wharf_registry::RegistryConfig;
use wharf_store::{S3Config, StorageConfig};

use crate::metrics::MetricsConfig;

/// What replaces a secret in printed configuration.
pub const REDACTED: &str = "REDACTED";

/// Address `wharf serve` listens on when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Directory Wharf keeps its files under when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// The effective configuration of a Wharf process.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on (HTTP, or HTTPS when `tls` is configured).
    pub listen: String,
    /// Directory for local state: filesystem storage and the embedded PostgreSQL.
    pub data_dir: PathBuf,
    /// The URL clients reach this instance at, when it differs from `listen`
    /// (behind a load balancer or a TLS-terminating proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    pub log: LogConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub registry: RegistryConfig,
    pub auth: AuthConfig,
    pub projects: ProjectsConfig,
    pub jobs: JobsConfig,
    pub webhooks: wharf_projects::webhooks::WebhookConfig,
    pub replication: ReplicationConfig,
    pub metrics: MetricsConfig,
}

/// `[replication]`: replication endpoints, policies and proxy-cache projects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// File holding the AES-256 key endpoint credentials are sealed with
    /// (generated at first start; every replica must share it). Defaults
    /// to `<data_dir>/secrets/replication-credential.key`.
    pub credential_key: PathBuf,
    /// How the job workers reach this Wharf's `/v2` for push- and
    /// pull-based policies. Unset: `wharf serve` uses its own listener on
    /// loopback; `wharf worker` uses `external_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_url: Option<String>,
    /// Seconds a proxy-cache project trusts a cached tag before asking the
    /// upstream again (`HEAD`).
    pub proxy_recheck_secs: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            credential_key: PathBuf::from(DEFAULT_DATA_DIR)
                .join("secrets")
                .join("replication-credential.key"),
            local_url: None,
            proxy_recheck_secs: 300,
        }
    }
}

/// `[projects]`: defaults for new projects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectsConfig {
    /// Storage quota of a project created without one, in bytes; -1 is
    /// unlimited (Harbor's `storage_per_project`).
    pub default_storage_limit: i64,
}

impl Default for ProjectsConfig {
    fn default() -> Self {
        Self {
            default_storage_limit: -1,
        }
    }
}

/// `[jobs]`: this process's share of the background-job queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs (garbage collection, retention, purges, ...) this process runs
    /// at once; 0 runs none here, for installations where `wharf worker`
    /// processes do the background work.
    pub workers: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { workers: 2 }
    }
}

/// `[log]`: how Wharf writes its logs (to stderr).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: a level (`info`) or directives (`info,wharf_registry=debug`).
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[tls]`: serve HTTPS when both PEM files are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file holding the certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM file holding the private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[database]`: the PostgreSQL holding Wharf's metadata.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db`. Unset: Wharf runs a private
    /// PostgreSQL cluster under `<data_dir>/postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size of the connection pool.
    pub max_connections: u32,
    /// How long start-up keeps retrying to reach the database, in seconds.
    pub connect_timeout_secs: u64,
    /// Directory with `initdb` and `pg_ctl` for the embedded cluster; unset means
    /// search `PATH`, then the highest `/usr/lib/postgresql/*/bin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_bin_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = PathBuf::from(DEFAULT_DATA_DIR);
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            storage: StorageConfig::Filesystem {
                root: data_dir.join("storage"),
            },
            data_dir,
            external_url: None,
            workers: 0,
            shutdown_timeout_secs: 30,
            log: LogConfig::default(),
            tls: TlsConfig::default(),
            database: DatabaseConfig::default(),
            registry: RegistryConfig::default(),
            auth: AuthConfig::default(),
            projects: ProjectsConfig::default(),
            jobs: JobsConfig::default(),
            webhooks: Default::default(),
            replication: ReplicationConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            connect_timeout_secs: 30,
            postgres_bin_dir: None,
        }
    }
}

/// The kind of value an environment variable carries, so `WHARF_WORKERS=4` becomes
/// a TOML integer and `WHARF_STORAGE_S3_PATH_STYLE=true` a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    String,
    Integer,
    Bool,
    /// Comma-separated values, a TOML array of strings.
    List,
}

/// One environment variable and the configuration key it sets.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    /// Dotted key path in the TOML file.
    pub key: &'static str,
    pub kind: EnvKind,
}

const fn var(name: &'static str, key: &'static str, kind: EnvKind) -> EnvVar {
    EnvVar { name, key, kind }
}

/// Every environment variable Wharf reads for its configuration, in precedence
/// order: when two map to the same key, the later one wins (`WHARF_DATABASE_URL`
/// over `DATABASE_URL`). Empty values count as unset.
pub const ENV_VARS: &[EnvVar] = &[
    var("WHARF_LISTEN", "listen", EnvKind::String),
    var("WHARF_DATA_DIR", "data_dir", EnvKind::String),
    var("WHARF_EXTERNAL_URL", "external_url", EnvKind::String),
    var("WHARF_WORKERS", "workers", EnvKind::Integer),
    var(
        "WHARF_SHUTDOWN_TIMEOUT_SECS",
        "shutdown_timeout_secs",
        EnvKind::Integer,
    ),
    var("WHARF_LOG_FORMAT", "log.format", EnvKind::String),
    var("WHARF_LOG_LEVEL", "log.level", EnvKind::String),
    var("WHARF_TLS_CERT", "tls.cert", EnvKind::String),
    var("WHARF_TLS_KEY", "tls.key", EnvKind::String),
    var("DATABASE_URL", "database.url", EnvKind::String),
    var("WHARF_DATABASE_URL", "database.url", EnvKind::String),
    var(
        "WHARF_DATABASE_MAX_CONNECTIONS",
        "database.max_connections",
        EnvKind::Integer,
    ),
    var(
        "WHARF_DATABASE_CONNECT_TIMEOUT_SECS",
        "database.connect_timeout_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_DATABASE_POSTGRES_BIN_DIR",
        "database.postgres_bin_dir",
        EnvKind::String,
    ),
    var("WHARF_STORAGE_TYPE", "storage.type", EnvKind::String),
    var("WHARF_STORAGE_ROOT", "storage.root", EnvKind::String),
    var("WHARF_STORAGE_S3_BUCKET", "storage.bucket", EnvKind::String),
    var("WHARF_STORAGE_S3_REGION", "storage.region", EnvKind::String),
    var(
        "WHARF_STORAGE_S3_ENDPOINT",
        "storage.endpoint",
        EnvKind::String,
    ),
    var(
        "WHARF_STORAGE_S3_PATH_STYLE",
        "storage.path_style",
        EnvKind::Bool,
    ),
    var(
        "WHARF_STORAGE_S3_ALLOW_HTTP",
        "storage.allow_http",
        EnvKind::Bool,
    ),
    var(
        "WHARF_STORAGE_S3_ACCESS_KEY_ID",
        "storage.access_key_id",
        EnvKind::String,
    ),
    var(
        "WHARF_STORAGE_S3_SECRET_ACCESS_KEY",
        "storage.secret_access_key",
        EnvKind::String,
    ),
    var(
        "WHARF_STORAGE_S3_SESSION_TOKEN",
        "storage.session_token",
        EnvKind::String,
    ),
    var("WHARF_STORAGE_S3_PREFIX", "storage.prefix", EnvKind::String),
    var(
        "WHARF_REGISTRY_UPLOAD_PURGE_AFTER_SECS",
        "registry.upload_purge_after_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_REGISTRY_MAINTENANCE_INTERVAL_SECS",
        "registry.maintenance_interval_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_REGISTRY_GC_GRACE_PERIOD_SECS",
        "registry.gc_grace_period_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_PROJECTS_DEFAULT_STORAGE_LIMIT",
        "projects.default_storage_limit",
        EnvKind::Integer,
    ),
    var("WHARF_JOBS_WORKERS", "jobs.workers", EnvKind::Integer),
    var(
        "WHARF_WEBHOOKS_TIMEOUT_SECS",
        "webhooks.timeout_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_WEBHOOKS_MAX_ATTEMPTS",
        "webhooks.max_attempts",
        EnvKind::Integer,
    ),
    var(
        "WHARF_REPLICATION_CREDENTIAL_KEY",
        "replication.credential_key",
        EnvKind::String,
    ),
    var(
        "WHARF_REPLICATION_LOCAL_URL",
        "replication.local_url",
        EnvKind::String,
    ),
    var(
        "WHARF_REPLICATION_PROXY_RECHECK_SECS",
        "replication.proxy_recheck_secs",
        EnvKind::Integer,
    ),
    var("WHARF_METRICS_ENABLED", "metrics.enabled", EnvKind::Bool),
    var("WHARF_METRICS_LISTEN", "metrics.listen", EnvKind::String),
    var(
        "WHARF_ADMIN_PASSWORD",
        "auth.admin_password",
        EnvKind::String,
    ),
    var("WHARF_AUTH_SERVICE", "auth.service", EnvKind::String),
    var("WHARF_AUTH_ISSUER", "auth.issuer", EnvKind::String),
    var(
        "WHARF_AUTH_TOKEN_LIFETIME_SECS",
        "auth.token_lifetime_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_REFRESH_TOKEN_LIFETIME_SECS",
        "auth.refresh_token_lifetime_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_SIGNING_KEY",
        "auth.signing_key",
        EnvKind::String,
    ),
    var(
        "WHARF_AUTH_ROBOT_PREFIX",
        "auth.robot_prefix",
        EnvKind::String,
    ),
    var(
        "WHARF_AUTH_TRUSTED_PROXIES",
        "auth.trusted_proxies",
        EnvKind::List,
    ),
    var(
        "WHARF_AUTH_SESSION_LIFETIME_SECS",
        "auth.session_lifetime_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_SUBJECT_RECHECK_SECS",
        "auth.subject_recheck_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_THROTTLE_MAX_FAILURES_PER_USER",
        "auth.throttle.max_failures_per_user",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_THROTTLE_MAX_FAILURES_PER_ADDRESS",
        "auth.throttle.max_failures_per_address",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_THROTTLE_WINDOW_SECS",
        "auth.throttle.window_secs",
        EnvKind::Integer,
    ),
    var(
        "WHARF_AUTH_THROTTLE_LOCKOUT_SECS",
        "auth.throttle.lockout_secs",
        EnvKind::Integer,
    ),
];

/// Environment variables that are not configuration keys but are expected to be set.
const ENV_NOT_KEYS: &[&str] = &["WHARF_CONFIG"];

/// Values given on the command line: the last layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub external_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

/// A loaded configuration plus what the loader wants to tell the operator once
/// logging is up (unknown `WHARF_*` variables, most likely typos).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Why a configuration could not be loaded. Messages name the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?} is not {expected}")]
    Env {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Build the configuration from defaults, the optional TOML `file`, the
    /// environment `env` (pass `std::env::vars()` in production; a map in tests)
    /// and the command-line `overrides`, in that order.
    pub fn load<I, K, V>(
        file: Option<&Path>,
        env: I,
        overrides: &Overrides,
    ) -> Result<Loaded, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<Table>().map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => Table::new(),
        };
        let warnings = apply_env(&mut table, &env)?;
        apply_overrides(&mut table, overrides);
        default_storage_root(&mut table);
        default_secret_files(&mut table);

        // Through text rather than `Table::try_into`, so errors carry a position we
        // can turn into the offending key.
        let merged = toml::to_string(&table)
            .map_err(|e| ConfigError::Invalid(format!("cannot merge configuration layers: {e}")))?;
        let config: Config = toml::from_str(&merged).map_err(|e: toml::de::Error| {
            let origin = file.map_or_else(
                || "defaults and environment".to_owned(),
                |p| format!("{}, environment and flags", p.display()),
            );
            let key = e.span().and_then(|span| key_at(&merged, span.start));
            let at = key.map(|k| format!("`{k}`: ")).unwrap_or_default();
            ConfigError::Invalid(format!("{at}{} (from {origin})", e.message().trim()))
        })?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// Checks serde cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.trim().is_empty() {
            return Err(ConfigError::Invalid("`listen` is empty".into()));
        }
        if let Some(external) = &self.external_url {
            let url = url::Url::parse(external).map_err(|e| {
                ConfigError::Invalid(format!("`external_url` {external:?} is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(format!(
                    "`external_url` {external:?} must be http:// or https://"
                )));
            }
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "`tls.cert` and `tls.key` must be set together".into(),
                ));
            }
            _ => {}
        }
        if self.projects.default_storage_limit < -1 || self.projects.default_storage_limit == 0 {
            return Err(ConfigError::Invalid(
                "`projects.default_storage_limit` must be -1 (unlimited) or a number of bytes"
                    .into(),
            ));
        }
        self.webhooks.validate().map_err(ConfigError::Invalid)?;
        if let Some(local) = &self.replication.local_url {
            let ok = url::Url::parse(local).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "`replication.local_url` {local:?} must be an http:// or https:// URL"
                )));
            }
        }
        self.metrics
            .validate(&self.listen)
            .map_err(ConfigError::Invalid)?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "`database.max_connections` must be at least 1".into(),
            ));
        }
        if let StorageConfig::S3(s3) = &self.storage
            && s3.bucket.is_empty()
        {
            return Err(ConfigError::Invalid(
                "`storage.bucket` is required when `storage.type = \"s3\"`".into(),
            ));
        }
        Ok(())
    }

    /// Whether HTTPS is configured.
    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some() && self.tls.key.is_some()
    }

    /// A copy with every secret replaced by [`REDACTED`]: safe to print or log.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        copy.database.url = copy.database.url.as_deref().map(redact_database_url);
        if let StorageConfig::S3(s3) = &mut copy.storage {
            redact_s3(s3);
        }
        if copy.auth.admin_password.is_some() {
            copy.auth.admin_password = Some(REDACTED.to_owned());
        }
        copy
    }

    /// The configuration as TOML, secrets redacted (what `wharf config` prints).
    pub fn to_redacted_toml(&self) -> String {
        let mut text = toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# configuration cannot be shown as TOML: {e}"));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_redacted_toml())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug of the storage enum is wharf-store's; print our redacted TOML view of
        // it instead so a secret cannot leak whatever that impl does.
        let safe = self.redacted();
        let storage = toml::to_string(&safe.storage).unwrap_or_default();
        f.debug_struct("Config")
            .field("listen", &safe.listen)
            .field("data_dir", &safe.data_dir)
            .field("external_url", &safe.external_url)
            .field("workers", &safe.workers)
            .field("shutdown_timeout_secs", &safe.shutdown_timeout_secs)
            .field("log", &safe.log)
            .field("tls", &safe.tls)
            .field("database", &safe.database)
            .field("storage", &storage.trim().replace('\n', ", "))
            .field("registry", &safe.registry)
            .field("auth", &safe.auth)
            .field("projects", &safe.projects)
            .field("jobs", &safe.jobs)
            .field("replication", &safe.replication)
            .field("metrics", &safe.metrics)
            .finish()
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redact_database_url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("postgres_bin_dir", &self.postgres_bin_dir)
            .finish()
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:REDACTED@host/db?password=REDACTED`.
/// Anything that does not parse as a URL is redacted whole: it might be all secret.
pub fn redact_database_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return REDACTED.to_owned();
    };
    if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
        return REDACTED.to_owned();
    }
    if url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    REDACTED.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

fn redact_s3(s3: &mut S3Config) {
    for secret in [&mut s3.secret_access_key, &mut s3.session_token] {
        if secret.is_some() {
            *secret = Some(REDACTED.to_owned());
        }
    }
}

fn apply_env(
    table: &mut Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    for spec in ENV_VARS {
        let Some(raw) = env.get(spec.name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = match spec.kind {
            EnvKind::String => Value::String(raw.clone()),
            EnvKind::Integer => {
                Value::Integer(raw.trim().parse().map_err(|_| ConfigError::Env {
                    name: spec.name,
                    value: raw.clone(),
                    expected: "an integer",
                })?)
            }
            EnvKind::Bool => Value::Boolean(parse_bool(raw).ok_or_else(|| ConfigError::Env {
                name: spec.name,
                value: raw.clone(),
                expected: "a boolean (true/false)",
            })?),
            EnvKind::List => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_owned()))
                    .collect(),
            ),
        };
        set_path(table, spec.key, value);
    }
    let warnings = env
        .keys()
        .filter(|name| name.starts_with("WHARF_"))
        .filter(|name| !ENV_VARS.iter().any(|spec| spec.name == name.as_str()))
        .filter(|name| !ENV_NOT_KEYS.contains(&name.as_str()))
        .map(|name| format!("environment variable {name} is not a Wharf setting and is ignored"))
        .collect();
    Ok(warnings)
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn apply_overrides(table: &mut Table, overrides: &Overrides) {
    let path_string = |p: &PathBuf| Value::String(p.to_string_lossy().into_owned());
    if let Some(listen) = &overrides.listen {
        set_path(table, "listen", Value::String(listen.clone()));
    }
    if let Some(dir) = &overrides.data_dir {
        set_path(table, "data_dir", path_string(dir));
    }
    if let Some(url) = &overrides.external_url {
        set_path(table, "external_url", Value::String(url.clone()));
    }
    if let Some(format) = overrides.log_format {
        let name = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        set_path(table, "log.format", Value::String(name.into()));
    }
    if let Some(level) = &overrides.log_level {
        set_path(table, "log.level", Value::String(level.clone()));
    }
}

/// Storage defaults to the filesystem under `<data_dir>/storage`, with `data_dir`
/// as finally decided by every layer; a filesystem store without `root` gets the
/// same default.
fn default_storage_root(table: &mut Table) {
    let data_dir = table
        .get("data_dir")
        .and_then(Value::as_str)
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
    let root = Value::String(data_dir.join("storage").to_string_lossy().into_owned());
    let storage = table
        .entry("storage")
        .or_insert_with(|| Value::Table(Table::new()));
    let Some(storage) = storage.as_table_mut() else {
        return;
    };
    if !storage.contains_key("type") {
        storage.insert("type".into(), Value::String("filesystem".into()));
    }
    if storage.get("type").and_then(Value::as_str) == Some("filesystem")
        && !storage.contains_key("root")
    {
        storage.insert("root".into(), root);
    }
}

/// The token-signing key and the replication credential key default to
/// files under `<data_dir>/secrets/`, with `data_dir` as finally decided by
/// every layer.
fn default_secret_files(table: &mut Table) {
    let data_dir = table
        .get("data_dir")
        .and_then(Value::as_str)
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
    let secrets = data_dir.join("secrets");
    for (section, key, file) in [
        ("auth", "signing_key", "token-signing-key.pem"),
        (
            "replication",
            "credential_key",
            "replication-credential.key",
        ),
    ] {
        let table = table
            .entry(section)
            .or_insert_with(|| Value::Table(Table::new()));
        if let Some(table) = table.as_table_mut()
            && !table.contains_key(key)
        {
            table.insert(
                key.into(),
                Value::String(secrets.join(file).to_string_lossy().into_owned()),
            );
        }
    }
}

/// The dotted key on the line of `merged` holding byte `offset` (values are not
/// shown: they could be secrets).
fn key_at(merged: &str, offset: usize) -> Option<String> {
    let before = merged.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = merged[line_start..].lines().next()?.trim();
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')));
    if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return Some(header.trim().to_owned());
    }
    let key = line.split('=').next()?.trim();
    Some(match table {
        Some(table) => format!("{}.{key}", table.trim()),
        None => key.to_owned(),
    })
}

/// Set `a.b.c = value`, creating intermediate tables. A non-table in the way is
/// replaced: the later layer wins.
fn set_path(table: &mut Table, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part)
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(file.map(|_| path.as_path()), env, &Overrides::default()).map(|l| l.config)
    }

    #[test]
    fn nothing_configured_gives_the_documented_defaults() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.shutdown_timeout_secs, 30);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.database.url.is_none());
        assert!(!c.tls_enabled());
        match c.storage {
            StorageConfig::Filesystem { root } => assert_eq!(root, PathBuf::from("./data/storage")),
            _ => panic!("default storage must be the filesystem"),
        }
    }

    #[test]
    fn storage_root_follows_the_final_data_dir() {
        let c = load(
            Some("data_dir = \"/srv/a\""),
            &[("WHARF_DATA_DIR", "/srv/b")],
        )
        .unwrap();
        match c.storage {
            StorageConfig::Filesystem { root } => assert_eq!(root, PathBuf::from("/srv/b/storage")),
            _ => panic!("expected filesystem storage"),
        }
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:1\"\nworkers = 2\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let env = [("WHARF_LISTEN", "0.0.0.0:2"), ("WHARF_WORKERS", "3")];
        let c = Config::load(Some(&path), env, &Overrides::default())
            .unwrap()
            .config;
        assert_eq!(c.listen, "0.0.0.0:2");
        assert_eq!(c.workers, 3);
        assert_eq!(
            c.log.format,
            LogFormat::Json,
            "file value kept when env is silent"
        );

        let flags = Overrides {
            listen: Some("0.0.0.0:3".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&path), env, &flags).unwrap().config;
        assert_eq!(c.listen, "0.0.0.0:3");
    }

    #[test]
    fn wharf_database_url_beats_database_url() {
        let c = load(
            Some("[database]\nurl = \"postgres://file/db\""),
            &[
                ("DATABASE_URL", "postgres://plain/db"),
                ("WHARF_DATABASE_URL", "postgres://wharf/db"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url.as_deref(), Some("postgres://wharf/db"));
        let c = load(None, &[("DATABASE_URL", "postgres://plain/db")]).unwrap();
        assert_eq!(c.database.url.as_deref(), Some("postgres://plain/db"));
        let c = load(None, &[("DATABASE_URL", "")]).unwrap();
        assert!(
            c.database.url.is_none(),
            "an empty variable counts as unset"
        );
    }

    #[test]
    fn s3_storage_from_environment_alone() {
        let c = load(
            None,
            &[
                ("WHARF_STORAGE_TYPE", "s3"),
                ("WHARF_STORAGE_S3_BUCKET", "blobs"),
                ("WHARF_STORAGE_S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("WHARF_STORAGE_S3_PATH_STYLE", "true"),
                ("WHARF_STORAGE_S3_ALLOW_HTTP", "1"),
                ("WHARF_STORAGE_S3_ACCESS_KEY_ID", "AKIA"),
                ("WHARF_STORAGE_S3_SECRET_ACCESS_KEY", "hunter2"),
            ],
        )
        .unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("expected s3")
        };
        assert_eq!(s3.bucket, "blobs");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.path_style && s3.allow_http);
        assert_eq!(s3.secret_access_key.as_deref(), Some("hunter2"));
    }

    #[test]
    fn environment_switches_file_storage_to_filesystem() {
        let c = load(
            Some("[storage]\ntype = \"s3\"\nbucket = \"b\""),
            &[
                ("WHARF_STORAGE_TYPE", "filesystem"),
                ("WHARF_DATA_DIR", "/d"),
            ],
        )
        .unwrap();
        assert!(
            matches!(c.storage, StorageConfig::Filesystem { ref root } if root == Path::new("/d/storage"))
        );
    }

    #[test]
    fn bad_values_name_their_source() {
        let err = load(None, &[("WHARF_WORKERS", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WHARF_WORKERS"), "{err}");
        let err = load(Some("listen = 5"), &[]).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let err = load(Some("lisen = \"x\""), &[]).unwrap_err().to_string();
        assert!(err.contains("lisen"), "unknown keys are rejected: {err}");
        let err = load(Some("[log]\nformat = \"xml\""), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml"), "{err}");
        let err = load(None, &[("WHARF_TLS_CERT", "/c.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.key"), "{err}");
        let err = load(None, &[("WHARF_STORAGE_TYPE", "s3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bucket"), "{err}");
        let err = load(None, &[("WHARF_EXTERNAL_URL", "registry.example")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("external_url"), "{err}");
    }

    #[test]
    fn unknown_wharf_variables_are_reported() {
        let env = [
            ("WHARF_LISTN", "x"),
            ("WHARF_CONFIG", "/etc/wharf.toml"),
            ("HOME", "/root"),
        ];
        let loaded = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("WHARF_LISTN"));
    }

    #[test]
    fn every_env_var_maps_to_a_key_the_config_accepts() {
        for spec in ENV_VARS {
            let value = match spec.kind {
                EnvKind::String if spec.key == "log.format" => "json",
                EnvKind::String if spec.key == "storage.type" => "s3",
                EnvKind::String if spec.key.ends_with("_url") => "https://r.example",
                EnvKind::String => "/x",
                EnvKind::Integer => "7",
                EnvKind::Bool => "true",
                EnvKind::List => "10.0.0.1,10.1.0.0/16",
            };
            let mut env = vec![(spec.name, value)];
            if spec.key.starts_with("tls.") {
                env.extend([("WHARF_TLS_CERT", "/c"), ("WHARF_TLS_KEY", "/k")]);
            }
            if spec.key.starts_with("storage.") && spec.key != "storage.root" {
                env.extend([
                    ("WHARF_STORAGE_TYPE", "s3"),
                    ("WHARF_STORAGE_S3_BUCKET", "b"),
                ]);
            }
            let loaded = load(None, &env);
            assert!(
                loaded.is_ok(),
                "{} -> {}: {:?}",
                spec.name,
                spec.key,
                loaded.err()
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = load(
            None,
            &[
                (
                    "DATABASE_URL",
                    "postgres://wharf:pg-secret@db:5432/wharf?password=q-secret&sslmode=require",
                ),
                ("WHARF_STORAGE_TYPE", "s3"),
                ("WHARF_STORAGE_S3_BUCKET", "b"),
                ("WHARF_STORAGE_S3_ACCESS_KEY_ID", "AKIAVISIBLE"),
                ("WHARF_STORAGE_S3_SECRET_ACCESS_KEY", "s3-secret"),
                ("WHARF_STORAGE_S3_SESSION_TOKEN", "token-secret"),
                ("WHARF_ADMIN_PASSWORD", "Admin-secret1"),
            ],
        )
        .unwrap();
        assert!(!format!("{:?}", c.auth).contains("Admin-secret1"));
        for shown in [c.to_string(), format!("{c:?}"), format!("{:?}", c.database)] {
            for secret in [
                "pg-secret",
                "q-secret",
                "s3-secret",
                "token-secret",
                "Admin-secret1",
            ] {
                assert!(!shown.contains(secret), "{secret} leaked in {shown}");
            }
            assert!(shown.contains(REDACTED), "{shown}");
        }
        let shown = c.to_string();
        assert!(
            shown.contains("postgres://wharf:REDACTED@db:5432/wharf"),
            "{shown}"
        );
        assert!(
            shown.contains("sslmode=require") && shown.contains("AKIAVISIBLE"),
            "{shown}"
        );
        // The printed form is a valid configuration file itself.
        shown.parse::<Table>().unwrap();
    }

    #[test]
    fn unparsable_database_url_is_redacted_whole() {
        assert_eq!(redact_database_url("not a url with secret"), REDACTED);
        assert_eq!(
            redact_database_url("postgres://u@h/db"),
            "postgres://u@h/db"
        );
    }
}

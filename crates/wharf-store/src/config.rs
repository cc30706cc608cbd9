//! Storage configuration: the `[storage]` table of `wharf.toml`.

use std::fmt;
use std::path::PathBuf;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where blob bytes live. Deserialized from the `[storage]` table of wharf.toml
/// (`type = "filesystem" | "s3" | "memory"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StorageConfig {
    /// A local directory (default). Blobs go under `<root>/blobs`, upload data
    /// under `<root>/uploads`; both must be on the same filesystem.
    Filesystem {
        /// Storage root directory; created if missing.
        root: PathBuf,
    },
    /// An S3 (or S3-compatible) bucket.
    S3(S3Config),
    /// Process memory; everything is lost on exit. For tests and demos only.
    Memory,
}

/// Connection settings for an S3 or S3-compatible bucket.
///
/// Credentials left unset fall back to the usual `AWS_*` environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, …). `Debug` prints `[redacted]` for the secret key and the
/// session token.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct S3Config {
    /// Bucket name (must already exist).
    pub bucket: String,
    /// Region; defaults to `AWS_REGION` or else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Custom endpoint for S3-compatible stores, e.g. http://127.0.0.1:9000
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible servers need it).
    #[serde(default)]
    pub path_style: bool,
    /// Allow plain http endpoints.
    #[serde(default)]
    pub allow_http: bool,
    /// Access key id; falls back to `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key; falls back to `AWS_SECRET_ACCESS_KEY`. Never printed.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials; falls back to `AWS_SESSION_TOKEN`. Never printed.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What `Debug` prints in place of a secret.
const REDACTED: &str = "[redacted]";

impl fmt::Debug for S3Config {
    /// Like a derived `Debug`, but secrets show as `[redacted]` (or `None`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| REDACTED);
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// The S3 client these settings describe (no request is made).
    pub(crate) fn build(&self) -> Result<AmazonS3, StoreError> {
        if self.bucket.is_empty() {
            return Err(StoreError::Config(
                "storage.bucket must be set for S3 storage".into(),
            ));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if self.path_style {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        if self.allow_http {
            builder = builder.with_allow_http(true);
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        builder
            .build()
            .map_err(|e| StoreError::Config(format!("S3 storage: {e}")))
    }

    /// The key prefix as an object-store path (empty when unset).
    pub(crate) fn prefix_path(&self) -> Result<Path, StoreError> {
        match self.prefix.as_deref() {
            None => Ok(Path::default()),
            Some(p) => Path::parse(p).map_err(|e| {
                StoreError::Config(format!(
                    "storage.prefix {p:?} is not a valid key prefix: {e}"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = S3Config {
            bucket: "b".into(),
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("very-secret".into()),
            session_token: Some("token-secret".into()),
            ..Default::default()
        };
        let printed = format!("{c:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(!printed.contains("token-secret"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert!(printed.contains("AKIAEXAMPLE"));
        let printed = format!("{:?}", StorageConfig::S3(c));
        assert!(!printed.contains("very-secret"));
    }

    #[test]
    fn parses_storage_tables() {
        let c: StorageConfig = serde_json::from_value(serde_json::json!({
            "type": "s3", "bucket": "blobs", "endpoint": "http://127.0.0.1:9000",
            "path_style": true, "allow_http": true, "prefix": "wharf"
        }))
        .unwrap();
        let StorageConfig::S3(s3) = c else {
            panic!("expected s3")
        };
        assert_eq!(s3.bucket, "blobs");
        assert!(s3.path_style && s3.allow_http);
        assert_eq!(s3.prefix_path().unwrap().as_ref(), "wharf");
        let c: StorageConfig =
            serde_json::from_value(serde_json::json!({"type": "filesystem", "root": "/srv"}))
                .unwrap();
        assert!(matches!(c, StorageConfig::Filesystem { .. }));
    }

    #[test]
    fn s3_requires_a_bucket_and_a_valid_prefix() {
        assert!(matches!(
            S3Config::default().build(),
            Err(StoreError::Config(_))
        ));
        let c = S3Config {
            bucket: "b".into(),
            prefix: Some("a/../b".into()),
            ..Default::default()
        };
        assert!(matches!(c.prefix_path(), Err(StoreError::Config(_))));
    }
}

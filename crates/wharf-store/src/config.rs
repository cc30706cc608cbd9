use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where blob bytes live. Deserialized from the `[storage]` table of wharf.toml
/// (`type = "filesystem" | "s3" | "memory"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StorageConfig {
    Filesystem { root: PathBuf },
    S3(S3Config),
    Memory,
}

#[derive(Clone, Serialize, Deserialize, Default)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)] pub region: Option<String>,
    /// Custom endpoint for S3-compatible stores, e.g. http://127.0.0.1:9000
    #[serde(default)] pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible servers need it).
    #[serde(default)] pub path_style: bool,
    /// Allow plain http endpoints.
    #[serde(default)] pub allow_http: bool,
    #[serde(default)] pub access_key_id: Option<String>,
    #[serde(default)] pub secret_access_key: Option<String>,
    #[serde(default)] pub session_token: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default)] pub prefix: Option<String>,
}
// Debug for S3Config must redact secret_access_key and session_token.

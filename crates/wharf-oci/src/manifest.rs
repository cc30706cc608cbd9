//! Manifest and index parsing and structural validation (no I/O: presence of the
//! referenced blobs in a repository is the registry's job).
use std::collections::BTreeMap;
use crate::Digest;

/// The spec requires accepting at least 4 MB manifests; bigger ones get 413.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub platform: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub urls: Option<Vec<String>>,
}

/// What the registry needs to know about a manifest it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The manifest's media type (from the body's `mediaType`, or the Content-Type when the body has none).
    pub media_type: String,
    /// `artifactType` field of the manifest, if any.
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    /// Image manifest layers (`layers`) — blobs.
    pub layers: Vec<Descriptor>,
    /// Index / manifest list children — manifests.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError { /* TooLarge, NotJson(String), Invalid(String), MediaTypeMismatch{..}, UnsupportedMediaType(..) */ }

impl ParsedManifest {
    /// Parse and validate: JSON shape, schemaVersion 2, body `mediaType` consistent with
    /// `content_type` (when both present and not generic), descriptors well-formed
    /// (valid digests, sizes), index children only manifests, etc.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> { unimplemented!() }
    pub fn is_index(&self) -> bool { unimplemented!() }
    /// Blob descriptors this manifest requires in the repository: config + layers
    /// (excluding descriptors that carry `urls`, i.e. foreign layers).
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> { std::iter::empty() }
    /// The artifactType to report in a referrers response: `artifactType`, else the config's
    /// media type for image manifests; None for indexes without one.
    pub fn referrer_artifact_type(&self) -> Option<String> { unimplemented!() }
}

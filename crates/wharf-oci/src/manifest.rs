//! Manifest and index parsing and structural validation (no I/O: presence of the
//! referenced blobs in a repository is the registry's job).
//!
//! Parsing works on a `serde_json::Value` rather than typed structs so that every
//! rejection can name the offending field (`layers[2].digest: …`), and so that
//! fields Wharf does not model are tolerated: the registry stores the pushed bytes
//! unchanged, this module only decides whether to accept them and extracts what
//! the registry indexes.
use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::Digest;
use crate::media_types::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The spec requires accepting at least 4 MB manifests; bigger ones get 413.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// An OCI content descriptor: what a manifest says about one piece of content it
/// references. Serde form is the OCI JSON form (camelCase, absent optional fields omitted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content (at most `i64::MAX` when parsed here).
    pub size: u64,
    /// The referenced artifact's type (referrers responses, artifact indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Free-form string annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform object of an index child, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Alternative download locations; non-empty means a foreign layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// A descriptor with only the three required fields set.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
            urls: None,
        }
    }

    /// Whether the descriptor lists download `urls`, i.e. the content is a foreign
    /// layer the registry is not expected to hold.
    pub fn is_foreign(&self) -> bool {
        self.urls.as_ref().is_some_and(|urls| !urls.is_empty())
    }
}

/// What the registry needs to know about a manifest it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The manifest's media type (from the body's `mediaType`, or the Content-Type when the body has none).
    pub media_type: String,
    /// `artifactType` field of the manifest, if any.
    pub artifact_type: Option<String>,
    /// The `config` descriptor of an image manifest; `None` for indexes.
    pub config: Option<Descriptor>,
    /// Image manifest layers (`layers`) — blobs.
    pub layers: Vec<Descriptor>,
    /// Index / manifest list children — manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API), if any.
    pub subject: Option<Descriptor>,
    /// Top-level `annotations` (empty when absent).
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The body exceeds [`MAX_MANIFEST_SIZE`]; the registry answers 413.
    #[error("manifest is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Size of the rejected body.
        size: usize,
        /// The limit ([`MAX_MANIFEST_SIZE`]).
        max: usize,
    },
    /// The body is not parseable JSON; carries the parser's message.
    #[error("manifest is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but breaks a structural rule; the message names the field.
    #[error("manifest invalid: {0}")]
    Invalid(String),
    /// The body's `mediaType` and the request's Content-Type disagree.
    #[error(
        "manifest mediaType {body:?} does not match the Content-Type {content_type:?}; \
         send the manifest with Content-Type equal to its mediaType"
    )]
    MediaTypeMismatch {
        /// `mediaType` from the body.
        body: String,
        /// Content-Type of the request, without parameters.
        content_type: String,
    },
    /// The media type is not one Wharf stores (e.g. Docker schema 1, or not a manifest type).
    #[error(
        "unsupported manifest media type {0:?}; Wharf accepts OCI image manifests and indexes \
         and Docker schema 2 manifests and manifest lists (Docker schema 1 is not supported)"
    )]
    UnsupportedMediaType(String),
}

/// Content-Types that say nothing about which manifest type the body is; they are
/// treated as if no Content-Type had been sent.
fn is_generic_content_type(essence: &str) -> bool {
    essence.is_empty()
        || essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/octet-stream")
}

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(message.into())
}

impl ParsedManifest {
    /// Parse and validate: JSON shape, schemaVersion 2, body `mediaType` consistent with
    /// `content_type` (when both present and not generic), descriptors well-formed
    /// (valid digests, sizes), index children only manifests, etc.
    ///
    /// The media type is the body's `mediaType`, else `content_type` without parameters
    /// (`application/json` and `application/octet-stream` count as absent), else inferred:
    /// an object with `config` is an OCI image manifest, one with `manifests` an OCI index.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge {
                size: bytes.len(),
                max: MAX_MANIFEST_SIZE,
            });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(invalid("a manifest must be a JSON object"));
        };

        let body_media_type = match optional(&object, "mediaType") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid("mediaType must be a string")),
        };
        let header_media_type = content_type
            .map(media_types::essence)
            .filter(|essence| !is_generic_content_type(essence));

        for media_type in [body_media_type, header_media_type].into_iter().flatten() {
            if media_types::is_docker_schema1_media_type(media_type) {
                return Err(ManifestError::UnsupportedMediaType(media_type.to_owned()));
            }
        }
        if let (Some(body), Some(header)) = (body_media_type, header_media_type)
            && body != header
        {
            return Err(ManifestError::MediaTypeMismatch {
                body: body.to_owned(),
                content_type: header.to_owned(),
            });
        }

        match object.get("schemaVersion") {
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) if v.as_u64() == Some(1) => {
                return Err(ManifestError::UnsupportedMediaType(
                    media_types::DOCKER_MANIFEST_V1.to_owned(),
                ));
            }
            Some(v) => return Err(invalid(format!("schemaVersion must be 2, got {v}"))),
            None => return Err(invalid("schemaVersion is required and must be 2")),
        }

        let media_type = match body_media_type.or(header_media_type) {
            Some(media_type) => media_type.to_owned(),
            None => infer_media_type(&object)?.to_owned(),
        };

        if media_types::is_manifest_media_type(&media_type) {
            parse_image_manifest(media_type, &object)
        } else if media_types::is_index_media_type(&media_type) {
            parse_index(media_type, &object)
        } else {
            Err(ManifestError::UnsupportedMediaType(media_type))
        }
    }

    /// True for OCI indexes and Docker manifest lists.
    pub fn is_index(&self) -> bool {
        media_types::is_index_media_type(&self.media_type)
    }

    /// Blob descriptors this manifest requires in the repository: config + layers
    /// (excluding descriptors that carry `urls`, i.e. foreign layers).
    ///
    /// Config first, then layers in order; a digest that appears more than once
    /// (e.g. the empty descriptor as both config and layer) is yielded once.
    /// Empty for indexes, whose children are manifests, not blobs.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        let mut seen = HashSet::new();
        self.config
            .iter()
            .chain(self.layers.iter())
            .filter(|d| !d.is_foreign())
            .filter(move |d| seen.insert(&d.digest))
    }

    /// The artifactType to report in a referrers response: `artifactType`, else the config's
    /// media type for image manifests; None for indexes without one.
    pub fn referrer_artifact_type(&self) -> Option<String> {
        self.artifact_type.clone().or_else(|| {
            if self.is_index() {
                None
            } else {
                self.config.as_ref().map(|c| c.media_type.clone())
            }
        })
    }
}

fn infer_media_type(object: &Map<String, Value>) -> Result<&'static str, ManifestError> {
    match (
        object.contains_key("config"),
        object.contains_key("manifests"),
    ) {
        (true, false) => Ok(OCI_MANIFEST),
        (false, true) => Ok(OCI_INDEX),
        (true, true) => Err(invalid(
            "manifest has no mediaType and both config and manifests, so its type is ambiguous; \
             set mediaType",
        )),
        (false, false) => Err(invalid(
            "manifest has no mediaType and no Content-Type was given; set mediaType",
        )),
    }
}

fn parse_image_manifest(
    media_type: String,
    object: &Map<String, Value>,
) -> Result<ParsedManifest, ManifestError> {
    let config = match object.get("config") {
        Some(value) => descriptor(value, "config")?,
        None => return Err(invalid("config is required in an image manifest")),
    };
    let layers = match object.get("layers") {
        Some(Value::Array(items)) => descriptors(items, "layers")?,
        // Go's image-spec types encode an empty (nil) slice as `null`.
        Some(Value::Null) => Vec::new(),
        Some(_) => return Err(invalid("layers must be an array of descriptors")),
        None => {
            return Err(invalid(
                "layers is required in an image manifest (it may be empty)",
            ));
        }
    };
    let artifact_type = artifact_type(&media_type, object)?;
    Ok(ParsedManifest {
        artifact_type,
        config: Some(config),
        layers,
        manifests: Vec::new(),
        subject: subject(object)?,
        annotations: annotations(optional(object, "annotations"), "annotations")?
            .unwrap_or_default(),
        media_type,
    })
}

fn parse_index(
    media_type: String,
    object: &Map<String, Value>,
) -> Result<ParsedManifest, ManifestError> {
    // Children may be image manifests, nested indexes or artifact manifests of any
    // type, so only the descriptor shape is checked, not the child media type.
    let manifests = match object.get("manifests") {
        Some(Value::Array(items)) => descriptors(items, "manifests")?,
        Some(Value::Null) => Vec::new(),
        Some(_) => return Err(invalid("manifests must be an array of descriptors")),
        None => {
            return Err(invalid(
                "manifests is required in an index (it may be empty)",
            ));
        }
    };
    let artifact_type = artifact_type(&media_type, object)?;
    Ok(ParsedManifest {
        artifact_type,
        config: None,
        layers: Vec::new(),
        manifests,
        subject: subject(object)?,
        annotations: annotations(optional(object, "annotations"), "annotations")?
            .unwrap_or_default(),
        media_type,
    })
}

/// `artifactType` is an OCI 1.1 field; Docker's formats have no such field, so a
/// Docker manifest carrying one is malformed rather than an artifact.
fn artifact_type(
    media_type: &str,
    object: &Map<String, Value>,
) -> Result<Option<String>, ManifestError> {
    let Some(value) = optional(object, "artifactType") else {
        return Ok(None);
    };
    if matches!(media_type, DOCKER_MANIFEST | DOCKER_MANIFEST_LIST) {
        return Err(invalid(format!(
            "artifactType is not allowed in {media_type} (use an OCI manifest for artifacts)"
        )));
    }
    media_type_field(value, "artifactType").map(Some)
}

fn subject(object: &Map<String, Value>) -> Result<Option<Descriptor>, ManifestError> {
    optional(object, "subject")
        .map(|value| descriptor(value, "subject"))
        .transpose()
}

/// An optional field; an explicit JSON `null` (which some Go encoders emit for nil
/// maps and slices) counts as absent.
fn optional<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn descriptors(items: &[Value], field: &str) -> Result<Vec<Descriptor>, ManifestError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| descriptor(item, &format!("{field}[{i}]")))
        .collect()
}

fn media_type_field(value: &Value, path: &str) -> Result<String, ManifestError> {
    match value {
        Value::String(s) if media_types::is_valid_media_type(s) => Ok(s.clone()),
        Value::String(s) => Err(invalid(format!(
            "{path}: {s:?} is not a media type of the form type/subtype"
        ))),
        _ => Err(invalid(format!("{path} must be a string"))),
    }
}

/// Validate one descriptor object; `path` names it in error messages.
fn descriptor(value: &Value, path: &str) -> Result<Descriptor, ManifestError> {
    let Value::Object(object) = value else {
        return Err(invalid(format!("{path} must be a descriptor object")));
    };
    let media_type = match object.get("mediaType") {
        Some(value) => media_type_field(value, &format!("{path}.mediaType"))?,
        None => return Err(invalid(format!("{path}.mediaType is required"))),
    };
    let digest = match object.get("digest") {
        Some(Value::String(s)) => {
            Digest::parse(s).map_err(|e| invalid(format!("{path}.digest {s:?}: {e}")))?
        }
        Some(_) => return Err(invalid(format!("{path}.digest must be a string"))),
        None => return Err(invalid(format!("{path}.digest is required"))),
    };
    let size = match object.get("size") {
        // Sizes are int64 in the spec; larger values could not be stored.
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&size| i64::try_from(size).is_ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{path}.size must be a non-negative integer, got {n}"
                ))
            })?,
        Some(_) => return Err(invalid(format!("{path}.size must be an integer"))),
        None => return Err(invalid(format!("{path}.size is required"))),
    };
    let artifact_type = optional(object, "artifactType")
        .map(|v| media_type_field(v, &format!("{path}.artifactType")))
        .transpose()?;
    let annotations = annotations(
        optional(object, "annotations"),
        &format!("{path}.annotations"),
    )?;
    let platform = match optional(object, "platform") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(invalid(format!("{path}.platform must be an object"))),
    };
    let urls = match optional(object, "urls") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(format!("{path}.urls must be an array of strings")))?,
        ),
        Some(_) => return Err(invalid(format!("{path}.urls must be an array of strings"))),
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type,
        annotations,
        platform,
        urls,
    })
}

fn annotations(
    value: Option<&Value>,
    path: &str,
) -> Result<Option<BTreeMap<String, String>>, ManifestError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let not_a_map = || invalid(format!("{path} must be an object of string values"));
    let Value::Object(object) = value else {
        return Err(not_a_map());
    };
    object
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(not_a_map)?.to_owned())))
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;

//! Resumable uploads.
//!
//! # Why the state is a value the caller keeps
//!
//! Any gateway replica may receive the next `PATCH` of an upload, so nothing
//! about an upload lives in process memory between calls. Every call takes an
//! [`UploadState`](crate::UploadState) and (on success) returns the next one; the
//! registry stores it as JSON next to the upload session. It holds:
//!
//! * `offset`: how many bytes were accepted; the next byte goes there;
//! * `hash_state`: the running digest of exactly those bytes
//!   ([`DigestHasher::save_state`]), so finishing never re-reads the data;
//! * `backend`: what the backend needs to continue ([`BackendState`]).
//!
//! # Failed appends leave the previous state valid
//!
//! An append that fails half way (the client hung up, the disk filled) returns
//! an error and no new state, so the caller still holds the state from before
//! the call. Whatever the failed call wrote beyond that state is ignored and
//! overwritten by the next append:
//!
//! * filesystem: the data file is truncated back to `offset` before writing;
//! * object store: parts are numbered by their position in the blob, so a retry
//!   re-puts the same part numbers (the last write of a part number wins), and
//!   the tail object is named by the offset where it ends, so a retry from an
//!   old state never picks up a tail written for a newer one.
//!
//! The stored bytes are therefore always exactly the bytes that went through
//! the saved hash, which is what makes it safe to trust the saved hash at
//! `finish` instead of reading everything back.
//!
//! Callers must not run two appends of one upload at the same time (the
//! registry holds a lease on the upload session while it appends).

use serde::{Deserialize, Serialize};
use wharf_oci::{DigestAlgorithm, DigestHasher};

use crate::{StoreError, UploadState};

/// Backend-specific part of [`UploadState::backend`]. The tag lets a state
/// produced by one backend be rejected by another instead of misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub(crate) enum BackendState {
    /// The data file at `uploads/<uuid>/data` holds the first `offset` bytes.
    Filesystem,
    /// Multipart upload in an object store.
    Object(ObjectUpload),
}

/// Resume data of an object-store upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectUpload {
    /// Multipart upload id, created when the first full part is ready.
    #[serde(default)]
    pub multipart_id: Option<String>,
    /// Content ids (ETags) of the parts put so far; part `i` is `parts[i]`.
    /// Every part is exactly the backend's part size.
    #[serde(default)]
    pub parts: Vec<String>,
    /// Length of the tail object `uploads/<uuid>/tail-<offset>` (0: none).
    #[serde(default)]
    pub tail_len: u64,
}

impl BackendState {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail; fall back to null rather
        // than unwrap so no panic path exists.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Self, StoreError> {
        serde_json::from_value(value.clone())
            .map_err(|e| StoreError::BadUploadState(format!("backend data: {e}")))
    }
}

impl UploadState {
    /// A state for an upload that has accepted nothing yet.
    pub(crate) fn fresh(algorithm: DigestAlgorithm, backend: &BackendState) -> Self {
        Self {
            offset: 0,
            algorithm: algorithm.as_str().to_owned(),
            hash_state: DigestHasher::new(algorithm).save_state(),
            backend: backend.to_json(),
        }
    }

    /// The running hasher this state describes.
    pub(crate) fn hasher(&self) -> Result<DigestHasher, StoreError> {
        let algorithm = DigestAlgorithm::parse(&self.algorithm).ok_or_else(|| {
            StoreError::BadUploadState(format!("unknown algorithm {:?}", self.algorithm))
        })?;
        DigestHasher::restore(algorithm, &self.hash_state)
            .map_err(|e| StoreError::BadUploadState(e.to_string()))
    }

    /// The state after more bytes were accepted.
    pub(crate) fn advanced(
        &self,
        offset: u64,
        hasher: &DigestHasher,
        backend: &BackendState,
    ) -> Self {
        Self {
            offset,
            algorithm: self.algorithm.clone(),
            hash_state: hasher.save_state(),
            backend: backend.to_json(),
        }
    }
}

/// `hash_state` is stored as a hex string inside the JSON (compact and readable
/// in the database); an array of numbers is accepted too.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Encoded {
        Hex(String),
        Bytes(Vec<u8>),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        match Encoded::deserialize(deserializer)? {
            Encoded::Hex(s) => hex::decode(s).map_err(serde::de::Error::custom),
            Encoded::Bytes(b) => Ok(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json_with_hex_hash_state() {
        let backend = BackendState::Object(ObjectUpload {
            multipart_id: Some("m-1".into()),
            parts: vec!["etag-0".into()],
            tail_len: 7,
        });
        let mut hasher = DigestHasher::new(DigestAlgorithm::Sha256);
        hasher.update(b"hello");
        let st =
            UploadState::fresh(DigestAlgorithm::Sha256, &backend).advanced(5, &hasher, &backend);
        let json = serde_json::to_value(&st).unwrap();
        assert!(json["hash_state"].is_string());
        assert_eq!(json["backend"]["backend"], "object");
        let back: UploadState = serde_json::from_value(json).unwrap();
        assert_eq!(back.offset, 5);
        assert_eq!(back.hash_state, st.hash_state);
        assert_eq!(BackendState::from_json(&back.backend).unwrap(), backend);
        hasher.update(b"!");
        let mut restored = back.hasher().unwrap();
        restored.update(b"!");
        assert_eq!(restored.finalize(), hasher.finalize());
    }

    #[test]
    fn byte_array_hash_state_is_accepted() {
        let st = UploadState::fresh(DigestAlgorithm::Sha512, &BackendState::Filesystem);
        let mut json = serde_json::to_value(&st).unwrap();
        json["hash_state"] = serde_json::to_value(&st.hash_state).unwrap();
        let back: UploadState = serde_json::from_value(json).unwrap();
        assert_eq!(back.hash_state, st.hash_state);
    }

    #[test]
    fn corrupt_states_are_rejected() {
        let mut st = UploadState::fresh(DigestAlgorithm::Sha256, &BackendState::Filesystem);
        st.algorithm = "md5".into();
        assert!(matches!(st.hasher(), Err(StoreError::BadUploadState(_))));
        st.algorithm = "sha512".into(); // state was saved for sha256
        assert!(matches!(st.hasher(), Err(StoreError::BadUploadState(_))));
        assert!(BackendState::from_json(&serde_json::json!({"backend": "ftp"})).is_err());
    }
}

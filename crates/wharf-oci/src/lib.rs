//! Pure OCI types shared by every Wharf crate: digests, repository names, tags,
//! references, media types, manifest parsing/validation and the distribution
//! spec's error codes. No I/O happens here.

pub mod digest;
pub mod error;
pub mod manifest;
pub mod media_types;
pub mod name;

pub use digest::{Digest, DigestAlgorithm, DigestHasher};
pub use error::{DistributionError, ErrorCode};
pub use manifest::{Descriptor, ManifestError, ParsedManifest, MAX_MANIFEST_SIZE};
pub use name::{NameError, Reference, RepositoryName, Tag};

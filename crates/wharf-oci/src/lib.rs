//! Pure OCI types shared by every Wharf crate: digests, repository names, tags,
//! references, media types, manifest parsing/validation and the distribution
//! spec's error codes. No I/O happens here.
//!
//! Everything that crosses the HTTP boundary as a string (names, tags, digests,
//! references) has a validated newtype here, so code in other crates never
//! handles a raw string that could be invalid.

pub mod digest;
pub mod error;
pub mod manifest;
pub mod media_types;
pub mod name;

pub use digest::{Digest, DigestAlgorithm, DigestError, DigestHasher};
pub use error::{DistributionError, ErrorCode};
pub use manifest::{Descriptor, MAX_MANIFEST_SIZE, ManifestError, ParsedManifest};
pub use name::{NameError, Reference, RepositoryName, Tag};

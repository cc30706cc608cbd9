//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and a hasher whose
//! state can be saved between requests so an upload can resume anywhere.

use std::fmt;
use std::str::FromStr;

/// The digest algorithms Wharf accepts end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    /// `"sha256"` / `"sha512"`.
    pub fn as_str(self) -> &'static str { unimplemented!() }
    /// Number of lowercase hex characters in an encoded digest (64 / 128).
    pub fn hex_len(self) -> usize { unimplemented!() }
    /// Parse `"sha256"` or `"sha512"`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> { unimplemented!() }
}

/// A validated digest. Display/serde form is `<alg>:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest { algorithm: DigestAlgorithm, hex: String }

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must look like <algorithm>:<hex>")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}; use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    #[error("digest hex must be {expected} lowercase hex characters")]
    BadHex { expected: usize },
}

impl Digest {
    pub fn parse(s: &str) -> Result<Self, DigestError> { unimplemented!() }
    /// Digest of `bytes` under `algorithm`.
    pub fn of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Self { unimplemented!() }
    pub fn algorithm(&self) -> DigestAlgorithm { self.algorithm }
    pub fn hex(&self) -> &str { &self.hex }
}
impl fmt::Display for Digest { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { unimplemented!() } }
impl FromStr for Digest { type Err = DigestError; fn from_str(s: &str) -> Result<Self, Self::Err> { Self::parse(s) } }
// + serde Serialize/Deserialize as the string form.

/// Incremental hasher for either algorithm. `save_state`/`restore` let the
/// registry persist the running hash after each PATCH so that the next chunk
/// may land on another process without re-reading what was already written.
#[derive(Clone)]
pub struct DigestHasher { /* private */ }

impl DigestHasher {
    pub fn new(algorithm: DigestAlgorithm) -> Self { unimplemented!() }
    pub fn algorithm(&self) -> DigestAlgorithm { unimplemented!() }
    pub fn update(&mut self, data: &[u8]) { unimplemented!() }
    pub fn finalize(self) -> Digest { unimplemented!() }
    /// Opaque bytes capturing the running state (sha2's SerializableState).
    pub fn save_state(&self) -> Vec<u8> { unimplemented!() }
    pub fn restore(algorithm: DigestAlgorithm, state: &[u8]) -> Result<Self, DigestError> { unimplemented!() }
}

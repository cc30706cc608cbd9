//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and a hasher whose
//! state can be saved between requests so an upload can resume anywhere.
//!
//! Only the two algorithms the OCI image spec registers are accepted, and only
//! in their canonical lowercase-hex encoding: two strings name the same content
//! exactly when they are equal, so digests can be compared, stored and used as
//! keys as plain strings.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

/// The digest algorithms Wharf accepts end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, encoded as 64 lowercase hex characters.
    Sha256,
    /// SHA-512, encoded as 128 lowercase hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// `"sha256"` / `"sha512"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Number of lowercase hex characters in an encoded digest (64 / 128).
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Parse `"sha256"` or `"sha512"` (exactly, lowercase); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    /// Writes the algorithm's name as it appears in a digest (`sha256`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DigestAlgorithm {
    type Err = DigestError;

    /// Same as [`DigestAlgorithm::parse`], with an error naming the rejected input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| DigestError::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// A validated digest. Display/serde form is `<alg>:<hex>`.
///
/// Invariant: `hex` is exactly `algorithm.hex_len()` characters of `[0-9a-f]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

/// Why a string is not an acceptable digest, or a saved hasher state is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// There is no `:` separating a non-empty algorithm from a non-empty encoded part.
    #[error("digest must look like <algorithm>:<hex>, e.g. sha256:<64 lowercase hex characters>")]
    Malformed,
    /// The algorithm is not `sha256` or `sha512` (names are case-sensitive).
    #[error("unsupported digest algorithm {0:?}; use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length or is not lowercase hex.
    #[error("digest hex must be {expected} lowercase hex characters")]
    BadHex {
        /// The length the algorithm requires (64 for sha256, 128 for sha512).
        expected: usize,
    },
    /// Bytes given to [`DigestHasher::restore`] are not a state saved by
    /// [`DigestHasher::save_state`] for that algorithm.
    #[error("saved {algorithm} hasher state is invalid or belongs to another algorithm")]
    InvalidHasherState {
        /// The algorithm the caller asked to restore.
        algorithm: DigestAlgorithm,
    },
}

impl Digest {
    /// Parse `<algorithm>:<hex>`, accepting only `sha256`/`sha512` with lowercase hex
    /// of exactly the algorithm's length.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (algorithm, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if algorithm.is_empty() || hex.is_empty() {
            return Err(DigestError::Malformed);
        }
        let algorithm = DigestAlgorithm::parse(algorithm)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(algorithm.to_owned()))?;
        Self::from_parts(algorithm, hex)
    }

    /// Build a digest from an algorithm and its encoded part, validating the hex the
    /// same way [`Digest::parse`] does.
    pub fn from_parts(algorithm: DigestAlgorithm, hex: &str) -> Result<Self, DigestError> {
        let valid = hex.len() == algorithm.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(DigestError::BadHex {
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Digest of `bytes` under `algorithm`.
    pub fn of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finalize()
    }

    /// Whether `bytes` hash to this digest under this digest's algorithm.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        Self::of(self.algorithm, bytes) == *self
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded part: lowercase hex of exactly `algorithm().hex_len()` characters.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    /// Writes the canonical `<alg>:<hex>` form, which [`Digest::parse`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Same as [`Digest::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    /// Serializes as the `<alg>:<hex>` string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    /// Deserializes from a string, applying the same validation as [`Digest::parse`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher for either algorithm. `save_state`/`restore` let the
/// registry persist the running hash after each PATCH so that the next chunk
/// may land on another process without re-reading what was already written.
#[derive(Clone)]
pub struct DigestHasher {
    inner: HasherInner,
}

#[derive(Clone)]
enum HasherInner {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// First byte of a saved state, so a state saved for one algorithm is never fed to
/// the other. Version 1 is sha2 0.11's `SerializableState` encoding; should that
/// encoding ever change, a new tag lets old states be recognised and rejected.
const STATE_TAG_SHA256_V1: u8 = 0x01;
const STATE_TAG_SHA512_V1: u8 = 0x02;

impl DigestHasher {
    /// A hasher that has seen no data yet.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        let inner = match algorithm {
            DigestAlgorithm::Sha256 => HasherInner::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => HasherInner::Sha512(Sha512::new()),
        };
        Self { inner }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.inner {
            HasherInner::Sha256(_) => DigestAlgorithm::Sha256,
            HasherInner::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feed more data; hashing `a` then `b` equals hashing `a ++ b`.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            HasherInner::Sha256(h) => h.update(data),
            HasherInner::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Digest {
        let (algorithm, hex) = match self.inner {
            HasherInner::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            HasherInner::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// Opaque bytes capturing the running state (sha2's SerializableState).
    ///
    /// The bytes are a one-byte algorithm/version tag followed by sha2 0.11's
    /// serialized state; [`DigestHasher::restore`] with the same algorithm yields a
    /// hasher that continues exactly where this one stands. They contain (a function
    /// of) the hashed data, so store them as carefully as the data itself.
    pub fn save_state(&self) -> Vec<u8> {
        let (tag, state) = match &self.inner {
            HasherInner::Sha256(h) => (STATE_TAG_SHA256_V1, h.serialize().to_vec()),
            HasherInner::Sha512(h) => (STATE_TAG_SHA512_V1, h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(1 + state.len());
        out.push(tag);
        out.extend_from_slice(&state);
        out
    }

    /// Rebuild a hasher from [`DigestHasher::save_state`] output. Fails with
    /// [`DigestError::InvalidHasherState`] if the bytes were saved for another
    /// algorithm, have the wrong length, or are not a consistent state.
    pub fn restore(algorithm: DigestAlgorithm, state: &[u8]) -> Result<Self, DigestError> {
        let invalid = DigestError::InvalidHasherState { algorithm };
        let (&tag, rest) = state.split_first().ok_or_else(|| invalid.clone())?;
        let inner = match (algorithm, tag) {
            (DigestAlgorithm::Sha256, STATE_TAG_SHA256_V1) => {
                HasherInner::Sha256(deserialize_state::<Sha256>(rest).ok_or(invalid)?)
            }
            (DigestAlgorithm::Sha512, STATE_TAG_SHA512_V1) => {
                HasherInner::Sha512(deserialize_state::<Sha512>(rest).ok_or(invalid)?)
            }
            _ => return Err(invalid),
        };
        Ok(Self { inner })
    }
}

fn deserialize_state<H: SerializableState>(bytes: &[u8]) -> Option<H> {
    let state = sha2::digest::common::hazmat::SerializedState::<H>::try_from(bytes).ok()?;
    H::deserialize(&state).ok()
}

impl fmt::Debug for DigestHasher {
    /// Shows only the algorithm; the running state is not meaningful to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestHasher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY_SHA512: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    #[test]
    fn parses_and_displays_sha256() {
        let s = format!("sha256:{EMPTY_SHA256}");
        let d = Digest::parse(&s).unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(d.hex(), EMPTY_SHA256);
        assert_eq!(d.to_string(), s);
        assert_eq!(s.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn parses_sha512() {
        let d = Digest::parse(&format!("sha512:{EMPTY_SHA512}")).unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha512);
        assert_eq!(d.hex().len(), 128);
    }

    #[test]
    fn rejects_malformed() {
        for s in ["", "sha256", "sha256:", ":abc", ":", "nocolon"] {
            assert_eq!(Digest::parse(s), Err(DigestError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn rejects_unknown_algorithms() {
        for alg in ["md5", "SHA256", "sha384", "sha256+b64u", "blake3"] {
            let s = format!("{alg}:{EMPTY_SHA256}");
            assert_eq!(
                Digest::parse(&s),
                Err(DigestError::UnsupportedAlgorithm(alg.to_owned())),
                "{s:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_hex() {
        let upper = EMPTY_SHA256.to_uppercase();
        let short = &EMPTY_SHA256[..63];
        let long = format!("{EMPTY_SHA256}0");
        let non_hex = format!("{}g", &EMPTY_SHA256[..63]);
        let with_colon = format!("{}:", &EMPTY_SHA256[..63]);
        for hex in [upper.as_str(), short, &long, &non_hex, &with_colon] {
            assert_eq!(
                Digest::parse(&format!("sha256:{hex}")),
                Err(DigestError::BadHex { expected: 64 }),
                "{hex:?}"
            );
        }
        // A sha256-length hex under sha512 is wrong too.
        assert_eq!(
            Digest::parse(&format!("sha512:{EMPTY_SHA256}")),
            Err(DigestError::BadHex { expected: 128 })
        );
    }

    #[test]
    fn from_parts_validates() {
        assert!(Digest::from_parts(DigestAlgorithm::Sha256, EMPTY_SHA256).is_ok());
        assert!(Digest::from_parts(DigestAlgorithm::Sha512, EMPTY_SHA256).is_err());
    }

    #[test]
    fn algorithm_parse_and_lengths() {
        assert_eq!(
            DigestAlgorithm::parse("sha256"),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(
            DigestAlgorithm::parse("sha512"),
            Some(DigestAlgorithm::Sha512)
        );
        assert_eq!(DigestAlgorithm::parse("Sha256"), None);
        assert_eq!(DigestAlgorithm::Sha256.hex_len(), 64);
        assert_eq!(DigestAlgorithm::Sha512.hex_len(), 128);
        assert_eq!(DigestAlgorithm::Sha512.to_string(), "sha512");
        assert!("md5".parse::<DigestAlgorithm>().is_err());
    }

    #[test]
    fn of_matches_known_vectors() {
        assert_eq!(Digest::of(DigestAlgorithm::Sha256, b"").hex(), EMPTY_SHA256);
        assert_eq!(Digest::of(DigestAlgorithm::Sha512, b"").hex(), EMPTY_SHA512);
        assert_eq!(
            Digest::of(DigestAlgorithm::Sha256, b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = Digest::of(DigestAlgorithm::Sha512, b"hello");
        assert!(d.verifies(b"hello"));
        assert!(!d.verifies(b"hello!"));
    }

    #[test]
    fn serde_uses_string_form() {
        let d = Digest::of(DigestAlgorithm::Sha256, b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"sha256:{EMPTY_SHA256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:XYZ\"").is_err());
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    fn data() -> Vec<u8> {
        // Long enough to span many blocks and not block-aligned.
        (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn save_restore_midway_matches_one_pass() {
        let data = data();
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            // Split points: empty first half, mid-block, block-aligned, everything.
            for split in [0, 1, 63, 64, 128, 5_000, data.len()] {
                let (a, b) = data.split_at(split);
                let mut first = DigestHasher::new(algorithm);
                first.update(a);
                let state = first.save_state();
                drop(first);
                let mut second = DigestHasher::restore(algorithm, &state).unwrap();
                assert_eq!(second.algorithm(), algorithm);
                second.update(b);
                assert_eq!(
                    second.finalize(),
                    Digest::of(algorithm, &data),
                    "{algorithm} split at {split}"
                );
            }
        }
    }

    #[test]
    fn restore_rejects_garbage() {
        let mut h = DigestHasher::new(DigestAlgorithm::Sha256);
        h.update(b"some bytes");
        let good256 = h.save_state();
        let good512 = DigestHasher::new(DigestAlgorithm::Sha512).save_state();

        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let err = Err(DigestError::InvalidHasherState { algorithm });
            assert_eq!(DigestHasher::restore(algorithm, &[]).map(|_| ()), err);
            assert_eq!(
                DigestHasher::restore(algorithm, b"garbage").map(|_| ()),
                err
            );
            assert_eq!(
                DigestHasher::restore(algorithm, &[0u8; 200]).map(|_| ()),
                err
            );
        }
        // Another algorithm's state.
        assert!(DigestHasher::restore(DigestAlgorithm::Sha512, &good256).is_err());
        assert!(DigestHasher::restore(DigestAlgorithm::Sha256, &good512).is_err());
        // Truncated or extended state.
        assert!(
            DigestHasher::restore(DigestAlgorithm::Sha256, &good256[..good256.len() - 1]).is_err()
        );
        let mut longer = good256.clone();
        longer.push(0);
        assert!(DigestHasher::restore(DigestAlgorithm::Sha256, &longer).is_err());
        // Right length, but the block buffer's position byte is out of range.
        let mut bad_pos = good256.clone();
        let pos_index = 1 + 40; // tag + sha256 core state (32 state + 8 block count)
        bad_pos[pos_index] = 0xff;
        assert!(DigestHasher::restore(DigestAlgorithm::Sha256, &bad_pos).is_err());
        // The untouched state still restores.
        assert!(DigestHasher::restore(DigestAlgorithm::Sha256, &good256).is_ok());
    }
}

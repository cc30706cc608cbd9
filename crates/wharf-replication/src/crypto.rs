//! Endpoint credentials at rest: sealed with AES-256-GCM under a key from
//! the configuration, so a database dump alone does not reveal them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;

use crate::client::ReplicationError;

/// The credential encryption key (32 bytes).
pub struct SecretKey(LessSafeKey);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl SecretKey {
    /// A key from its base64 form (as stored in the config or the data dir).
    pub fn from_base64(text: &str) -> Result<Self, ReplicationError> {
        let raw = B64
            .decode(text.trim())
            .map_err(|e| ReplicationError::Invalid(format!("credential key is not base64: {e}")))?;
        Self::from_bytes(&raw)
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, ReplicationError> {
        if raw.len() != 32 {
            return Err(ReplicationError::Invalid(format!(
                "credential key must be 32 bytes, got {}",
                raw.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, raw)
            .map_err(|_| ReplicationError::Invalid("credential key rejected".into()))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// A fresh random key, base64-encoded, for first start.
    pub fn generate_base64() -> String {
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).expect("system random source");
        B64.encode(raw)
    }

    /// The key in the file at `path`, generated there on first start: the
    /// directory is created 0700 and the file 0600 with `create_new`, and
    /// when another replica sharing the volume wins the race
    /// (`AlreadyExists`) its key is re-read, so all replicas agree.
    pub fn load_or_generate(path: &std::path::Path) -> Result<Self, ReplicationError> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let io = |what: &str, e: std::io::Error| {
            ReplicationError::Invalid(format!("{what} {}: {e}", path.display()))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_base64(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("cannot read credential key", e));
            }
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io("cannot create the directory of", e))?;
        }
        let text = Self::generate_base64();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io("cannot write credential key", e))?;
                Self::from_base64(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io("cannot read credential key", e))?;
                Self::from_base64(&text)
            }
            Err(e) => Err(io("cannot create credential key", e)),
        }
    }

    /// `base64(nonce || ciphertext || tag)`; a fresh nonce every time.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system random source");
        let mut data = plaintext.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .expect("AES-GCM sealing of a short secret");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        B64.encode(out)
    }

    /// The plaintext of `sealed`; an error if it was not sealed with this key.
    pub fn open(&self, sealed: &str) -> Result<String, ReplicationError> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| ReplicationError::Invalid("sealed credential is not base64".into()))?;
        if raw.len() < NONCE_LEN {
            return Err(ReplicationError::Invalid(
                "sealed credential is truncated".into(),
            ));
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| ReplicationError::Invalid("bad nonce".into()))?;
        let mut data = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| {
                ReplicationError::Invalid(
                    "sealed credential does not open with the configured key".into(),
                )
            })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| ReplicationError::Invalid("sealed credential is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_wrong_key() {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let sealed = key.seal("s3cret");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, key.seal("s3cret"), "nonces must differ");
        assert_eq!(key.open(&sealed).unwrap(), "s3cret");
        let other = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(SecretKey::from_bytes(&[0; 16]).is_err());
    }

    #[test]
    fn load_or_generate_creates_once_with_private_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/replication-credential.key");
        let first = SecretKey::load_or_generate(&path).unwrap();
        let sealed = first.seal("pw");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // A second start (or another replica) reads the same key back.
        let again = SecretKey::load_or_generate(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "pw");
        std::fs::write(&path, "not a key").unwrap();
        assert!(SecretKey::load_or_generate(&path).is_err());
    }
}

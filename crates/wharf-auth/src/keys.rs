//! The token-signing key of this replica and the public keys of all of them.
//!
//! Each replica signs with the ECDSA P-256 private key in its own PEM file
//! (PKCS#8, or SEC 1 `EC PRIVATE KEY` when an operator brings one), made at
//! first start with mode 0600 in a 0700 directory. Its public half is
//! published in `token_signing_keys` under a `kid` that is a fingerprint of
//! the public key, so a token signed by any replica verifies on every other.
//! A key never changes under its `kid`, so public keys are cached in memory
//! for the life of the process once looked up.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Digest as _;
use sqlx::PgPool;

use crate::error::AuthError;

/// The one algorithm tokens are signed and verified with.
pub(crate) const ALGORITHM: Algorithm = Algorithm::ES256;
const ALGORITHM_NAME: &str = "ES256";

/// This replica's private key, ready to sign.
pub(crate) struct SigningKey {
    /// Fingerprint of the public key, the JWT header `kid`.
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    /// The public key as SPKI PEM, as published.
    pub(crate) public_pem: String,
    /// The public key for verification.
    pub(crate) decoding: DecodingKey,
}

fn key_error(path: &Path, message: impl Into<String>) -> AuthError {
    AuthError::SigningKey {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl SigningKey {
    /// Read the key at `path`, or make one there if the file does not exist.
    pub(crate) fn load_or_generate(path: &Path) -> Result<SigningKey, AuthError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                warn_if_readable_by_others(path);
                Self::from_pem(path, &bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = generate_file(path)?;
                Self::from_pem(path, pem.as_bytes())
            }
            Err(e) => Err(key_error(path, format!("cannot read: {e}"))),
        }
    }

    fn from_pem(path: &Path, bytes: &[u8]) -> Result<SigningKey, AuthError> {
        let parsed = pem::parse(bytes).map_err(|e| key_error(path, format!("not PEM: {e}")))?;
        let pair = match parsed.tag() {
            "PRIVATE KEY" | "EC PRIVATE KEY" => EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                parsed.contents(),
            )
            .map_err(|e| key_error(path, format!("not an ECDSA P-256 private key: {e}")))?,
            other => {
                return Err(key_error(
                    path,
                    format!("holds a {other:?}; an ECDSA P-256 \"PRIVATE KEY\" is needed"),
                ));
            }
        };
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| key_error(path, "cannot re-encode the key as PKCS#8"))?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| key_error(path, "cannot encode the public key"))?;
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref()));
        Ok(SigningKey {
            kid: fingerprint(spki.as_ref()),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ec_der(pair.public_key().as_ref()),
            public_pem,
        })
    }
}

/// The `kid` of a public key: unpadded base64url of the SHA-256 of its
/// SubjectPublicKeyInfo DER.
fn fingerprint(spki_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(spki_der))
}

/// Make a new key and store it at `path` (0600, directory 0700). Written to a
/// temporary file and hard-linked into place, so a reader never sees half a
/// key and two replicas starting on one volume agree on a single key.
fn generate_file(path: &Path) -> Result<String, AuthError> {
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .and_then(|pair| pair.to_pkcs8v1())
        .map_err(|_| key_error(path, "cannot generate a key"))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| key_error(path, format!("cannot create {}: {e}", dir.display())))?;
    let tmp = temporary_name(path);
    let written = write_private(&tmp, pem.as_bytes());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(key_error(path, format!("cannot write: {e}")));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new token signing key");
            Ok(pem)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process made one first: use that.
            std::fs::read_to_string(path).map_err(|e| key_error(path, format!("cannot read: {e}")))
        }
        Err(e) => Err(key_error(path, format!("cannot store: {e}"))),
    }
}

fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", crate::random_token(9)));
    path.with_file_name(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the token signing key is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The public keys of every replica, by `kid`, cached forever once seen.
pub(crate) struct KeyRing {
    pool: PgPool,
    known: RwLock<HashMap<String, Arc<DecodingKey>>>,
}

impl KeyRing {
    /// Publish `own` (idempotent) and start a ring that knows it.
    pub(crate) async fn start(pool: PgPool, own: &SigningKey) -> Result<KeyRing, AuthError> {
        sqlx::query(
            "INSERT INTO token_signing_keys (kid, algorithm, public_key) VALUES ($1, $2, $3)
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&own.kid)
        .bind(ALGORITHM_NAME)
        .bind(&own.public_pem)
        .execute(&pool)
        .await?;
        let mut known = HashMap::new();
        known.insert(own.kid.clone(), Arc::new(own.decoding.clone()));
        Ok(KeyRing {
            pool,
            known: RwLock::new(known),
        })
    }

    /// The public key published under `kid`, if there is one for our
    /// algorithm. Unknown kids cost one primary-key lookup each time.
    pub(crate) async fn get(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, AuthError> {
        if let Some(key) = self.known.read().ok().and_then(|k| k.get(kid).cloned()) {
            return Ok(Some(key));
        }
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT algorithm, public_key FROM token_signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&self.pool)
                .await?;
        let Some((algorithm, public_pem)) = row else {
            return Ok(None);
        };
        if algorithm != ALGORITHM_NAME {
            tracing::warn!(
                kid,
                algorithm,
                "ignoring a signing key of an unsupported algorithm"
            );
            return Ok(None);
        }
        let key = match DecodingKey::from_ec_pem(public_pem.as_bytes()) {
            Ok(key) => Arc::new(key),
            Err(e) => {
                tracing::warn!(kid, error = %e, "ignoring an unreadable public key in token_signing_keys");
                return Ok(None);
            }
        };
        if let Ok(mut known) = self.known.write() {
            known.insert(kid.to_owned(), key.clone());
        }
        Ok(Some(key))
    }
}

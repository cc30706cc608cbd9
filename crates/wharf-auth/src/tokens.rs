//! Signing and verifying the JWTs: access tokens for `/v2` and refresh
//! tokens for the token endpoint.
//!
//! Verification trusts nothing in a token before its signature is checked
//! with a key we published: the algorithm is pinned to ES256 (so `none`, and
//! HS256 keyed with the public key, are refused before any key is used), the
//! `kid` must name a key in `token_signing_keys`, and `exp`/`nbf` (60 s
//! leeway), `iss` and `aud` must match. Access and refresh tokens have
//! different audiences, so one can never stand in for the other.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::keys::{ALGORITHM, KeyRing, SigningKey};

/// Clock skew tolerated on `exp` and `nbf` (seconds).
const LEEWAY_SECS: u64 = 60;

/// One entry of a token's `access` claim: what may be done to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// Granted actions: `pull`, `push`, `delete`, or `*` for the catalog.
    pub actions: Vec<String>,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// Username, robot login name, or `""` for anonymous.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
}

/// The claims of a refresh token. `typ` and the distinct audience keep it
/// from ever passing as an access token; `uid` ties it to the user or robot
/// row it was issued to, so a same-named account made later cannot use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefreshClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: String,
    pub uid: i64,
}

const REFRESH_TYP: &str = "refresh";

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: DateTime<Utc>,
}

/// Why a token was not accepted.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// The token is not one of ours, or no longer valid; the reason is for logs.
    Invalid(String),
    /// The key lookup failed.
    Internal(AuthError),
}

/// Signs with this replica's key and verifies with any replica's.
pub(crate) struct Tokens {
    pub(crate) issuer: String,
    pub(crate) service: String,
    pub(crate) lifetime_secs: u64,
    pub(crate) refresh_lifetime_secs: u64,
    pub(crate) signing: SigningKey,
    pub(crate) ring: KeyRing,
}

impl Tokens {
    fn refresh_audience(&self) -> String {
        format!("{}#refresh", self.service)
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.signing.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.signing.encoding)
            .map_err(|e| AuthError::Internal(format!("cannot sign a token: {e}")))
    }

    /// Sign an access token for `sub` granting `access`, issued at `now`.
    ///
    /// Callers pass the database's clock: `/v2` compares `iat` with project
    /// creation times, which are the database's, so a replica whose clock
    /// lags must not make a fresh token look older than a fresh project.
    pub(crate) fn issue_access(
        &self,
        sub: &str,
        access: Vec<ResourceAccess>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AuthError> {
        let iat = now.timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: self.service.clone(),
            exp: iat + secs(self.lifetime_secs),
            nbf: iat,
            iat,
            jti: crate::random_token(16),
            access,
        };
        Ok(IssuedToken {
            token: self.sign(&claims)?,
            expires_in: self.lifetime_secs,
            issued_at: now,
        })
    }

    /// Sign a refresh token for `sub`, the account with row id `uid`.
    pub(crate) fn issue_refresh(&self, sub: &str, uid: i64) -> Result<String, AuthError> {
        let iat = Utc::now().timestamp();
        self.sign(&RefreshClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: self.refresh_audience(),
            exp: iat + secs(self.refresh_lifetime_secs),
            nbf: iat,
            iat,
            jti: crate::random_token(16),
            typ: REFRESH_TYP.into(),
            uid,
        })
    }

    /// Verify an access token (signature, algorithm, key, times, issuer,
    /// audience).
    pub(crate) async fn verify_access(&self, token: &str) -> Result<AccessClaims, Rejected> {
        self.verify(token, &self.service).await
    }

    /// Verify a refresh token as strictly as an access token.
    pub(crate) async fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, Rejected> {
        let claims: RefreshClaims = self.verify(token, &self.refresh_audience()).await?;
        if claims.typ != REFRESH_TYP {
            return Err(Rejected::Invalid("not a refresh token".into()));
        }
        Ok(claims)
    }

    async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, Rejected> {
        // The header is read unverified only to pick the key; nothing in it is
        // believed until the signature checks out with that key.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejected::Invalid(format!("malformed token: {e}")))?;
        if header.alg != ALGORITHM {
            return Err(Rejected::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Rejected::Invalid("the token names no key (kid)".into()))?;
        let key = self
            .ring
            .get(&kid)
            .await
            .map_err(Rejected::Internal)?
            .ok_or_else(|| Rejected::Invalid(format!("unknown signing key {kid:?}")))?;
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<T>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| Rejected::Invalid(e.to_string()))
    }
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 2)
}

//! The `[auth]` table of `wharf.toml`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Token issuing, login and session settings (the `[auth]` table).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The registry's service name: the `aud` of every token and the
    /// `service` of every challenge.
    pub service: String,
    /// The `iss` of every token.
    pub issuer: String,
    /// How long an access token is valid (seconds).
    pub token_lifetime_secs: u64,
    /// How long a refresh token (`offline_token=true`, `access_type=offline`)
    /// is valid (seconds).
    pub refresh_token_lifetime_secs: u64,
    /// PEM file holding the ECDSA P-256 private key tokens are signed with;
    /// generated at first start when missing. Required by [`crate::Auth::start`];
    /// the gateway fills in `<data_dir>/secrets/token-signing-key.pem`.
    pub signing_key: Option<PathBuf>,
    /// Login-name prefix of robot accounts.
    pub robot_prefix: String,
    /// Password of the `admin` account created at first start (the gateway
    /// uses it; a generated one is printed once when unset). Never printed.
    pub admin_password: Option<String>,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`) of reverse proxies
    /// whose `X-Forwarded-For`, `-Proto` and `-Host` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// A console session ends after this long without a request (seconds).
    pub session_lifetime_secs: u64,
    /// How long the answer to "does this token's user or robot still exist
    /// and is it enabled" is reused on `/v2` (seconds): the longest a deleted
    /// user or a disabled robot keeps using a token it already holds.
    pub subject_recheck_secs: u64,
    /// Failed-login throttling (`[auth.throttle]`).
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service: "wharf-registry".into(),
            issuer: "wharf-token-issuer".into(),
            token_lifetime_secs: 1800,
            refresh_token_lifetime_secs: 30 * 24 * 3600,
            signing_key: None,
            robot_prefix: wharf_projects::robots::DEFAULT_PREFIX.into(),
            admin_password: None,
            trusted_proxies: Vec::new(),
            session_lifetime_secs: 3600,
            subject_recheck_secs: 10,
            throttle: ThrottleConfig::default(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field(
                "refresh_token_lifetime_secs",
                &self.refresh_token_lifetime_secs,
            )
            .field("signing_key", &self.signing_key)
            .field("robot_prefix", &self.robot_prefix)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "[redacted]"),
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("session_lifetime_secs", &self.session_lifetime_secs)
            .field("subject_recheck_secs", &self.subject_recheck_secs)
            .field("throttle", &self.throttle)
            .finish()
    }
}

/// Failed-login throttling (`[auth.throttle]`), counted per username and per
/// client address in PostgreSQL, so every replica sees the same counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failed logins for one username within the window that lock it.
    pub max_failures_per_user: u32,
    /// Failed logins from one client address within the window that lock it.
    pub max_failures_per_address: u32,
    /// The window failures are counted in (seconds).
    pub window_secs: u64,
    /// How long a locked username or address is refused (seconds).
    pub lockout_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures_per_user: 5,
            max_failures_per_address: 20,
            window_secs: 300,
            lockout_secs: 300,
        }
    }
}

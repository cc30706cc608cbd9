//! Docker token authentication for Wharf: the token issuer at
//! `/service/token`, the `/v2` authoriser, identification of `/api/v2.0`
//! callers, web-console sessions, and failed-login throttling.
//!
//! # The token flow
//!
//! 1. A client calls `/v2/...` without credentials and gets `401` with
//!    `WWW-Authenticate: Bearer realm="<url>/service/token",service="wharf-registry",scope="repository:library/app:pull"`.
//!    That happens on public projects too, so clients fetch an (anonymous)
//!    token rather than assume anonymous access, as with Harbor.
//! 2. The client asks `GET /service/token?service=…&scope=…` (Basic
//!    credentials optional; a robot logs in as `robot$<project>+<name>`) or
//!    `POST /service/token` (OAuth2 `password` or `refresh_token` grant).
//!    Wrong credentials are `401`; an anonymous request without any scope is
//!    `401` too (that is how `docker login` checks a password).
//! 3. The issuer asks `wharf-projects`' RBAC what the principal may do and
//!    signs a JWT whose `access` claim holds only that: `pull`, `push`,
//!    `delete` per repository (`*` asks for all three), `registry:catalog:*`
//!    for system administrators. What is not allowed is left out, never an
//!    error.
//! 4. The client retries `/v2/...` with `Authorization: Bearer <jwt>`. The
//!    authoriser checks the signature and claims without a database round
//!    trip (public keys are cached), then that the token's user or robot
//!    still exists and is enabled (one cheap query per subject every
//!    `subject_recheck_secs`, 10 s by default), that the token names this
//!    exact repository with every action the request needs, and that it was
//!    issued after the project was created (so a project deleted and made
//!    again under the same name ignores older tokens; `iat` is taken from
//!    the database's clock for that comparison).
//!
//! Clients may also send Basic credentials straight to `/v2`: RBAC then
//! decides per request.
//!
//! # Tokens
//!
//! JWTs signed with **ES256** (ECDSA P-256, SHA-256). Header: `alg`, `typ`,
//! `kid` (unpadded base64url SHA-256 of the public key's SubjectPublicKeyInfo).
//! Claims: `iss` (`issuer`), `sub` (username, robot login name, or `""` for
//! anonymous), `aud` (`service`), `exp`, `nbf`, `iat`, `jti` (random) and
//! `access: [{type, name, actions}]`. Verification pins the algorithm (so
//! `alg: none` and HS256 keyed with the public key are refused), requires a
//! published `kid`, and checks `exp`/`nbf` with 60 s leeway, `iss` and `aud`.
//!
//! Each replica signs with the private key in its own file (`signing_key`,
//! generated at first start, mode 0600 in a 0700 directory) and publishes the
//! public half in `token_signing_keys`, so any replica verifies tokens from
//! any other. To rotate, replace the file and restart: old tokens verify
//! until they expire. To revoke a leaked key, delete its row and restart
//! every replica (public keys are cached for the life of the process).
//!
//! Refresh tokens (`offline_token=true`, or `access_type=offline` with the
//! password grant) are JWTs of the same key with audience `<service>#refresh`
//! and `typ: "refresh"`, so they never pass as access tokens. Using one
//! re-checks that the same account (same row id) still exists and is enabled,
//! and the new access token is computed from current RBAC.
//!
//! # Throttling
//!
//! Failed logins count per username and per client address in
//! `login_failures` (shared by replicas). Reaching `max_failures_per_user` or
//! `max_failures_per_address` within `window_secs` locks that key for
//! `lockout_secs`: every login on it is answered `429` with `Retry-After`,
//! before any password is checked, and an audit entry records the lock.
//!
//! # Sessions
//!
//! `POST /c/login` (form `principal`, `password`) sets the cookie `sid`
//! (HttpOnly, SameSite=Lax, Secure on https) and returns the CSRF token in
//! `X-Harbor-CSRF-Token`. Only the SHA-256 of the session id is stored.
//! Requests authenticated by the cookie must send that header back on
//! `POST`/`PUT`/`PATCH`/`DELETE`. Sessions end after `session_lifetime_secs`
//! without a request, or at `/c/log_out`.
//!
//! # Client address
//!
//! The TCP peer, unless the peer is in `trusted_proxies`: then the right-most
//! `X-Forwarded-For` entry that is not a trusted proxy. `X-Forwarded-Proto`
//! and `-Host` (used for the realm when no external URL is configured, and
//! for the cookie's `Secure` flag) are likewise only believed from trusted
//! proxies.
//!
//! # Configuration (`[auth]`, see [`AuthConfig`])
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `service` | `wharf-registry` | token `aud`, challenge `service` |
//! | `issuer` | `wharf-token-issuer` | token `iss` |
//! | `token_lifetime_secs` | 1800 | access token lifetime |
//! | `refresh_token_lifetime_secs` | 2592000 (30 days) | refresh token lifetime |
//! | `signing_key` | (gateway: `<data_dir>/secrets/token-signing-key.pem`) | ECDSA P-256 private key, PEM |
//! | `robot_prefix` | `robot$` | robot login-name prefix |
//! | `admin_password` | none | first-start `admin` password (used by the gateway) |
//! | `trusted_proxies` | `[]` | IPs/CIDRs whose `X-Forwarded-*` are believed |
//! | `session_lifetime_secs` | 3600 | console session idle timeout |
//! | `subject_recheck_secs` | 10 | how long "this token's account is still enabled" is reused |
//! | `throttle.max_failures_per_user` | 5 | failures that lock a username |
//! | `throttle.max_failures_per_address` | 20 | failures that lock a client address |
//! | `throttle.window_secs` | 300 | window the failures are counted in |
//! | `throttle.lockout_secs` | 300 | how long a lock lasts |

mod config;
mod credentials;
mod error;
mod http;
mod identify;
mod keys;
mod login;
mod proxies;
mod recent;
mod registry_access;
pub mod scopes;
pub mod sessions;
mod throttle;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sqlx::PgPool;

pub use config::{AuthConfig, ThrottleConfig};
pub use error::AuthError;
pub use identify::identify;
pub use login::LoginFailure;
pub use sessions::{NewSession, Session};
pub use tokens::{AccessClaims, ResourceAccess};

use keys::{KeyRing, SigningKey};
use proxies::TrustedProxies;
use recent::Recent;
use tokens::Tokens;

/// The subject of [`Auth::service_token`]s. Usernames cannot hold `:`.
pub const SERVICE_SUBJECT: &str = "wharf:replication";

/// The token issuer and everything that identifies callers. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    config: AuthConfig,
    /// Without a trailing slash.
    external_url: Option<String>,
    trusted: TrustedProxies,
    tokens: Tokens,
    /// Subject → whether it may still use its tokens.
    subjects: Recent<bool>,
    /// Project name → creation time (epoch seconds).
    projects: Recent<i64>,
}

impl Auth {
    /// Loads (or generates at first start, file mode 0600 in a 0700
    /// directory) the signing key, publishes its public key in
    /// `token_signing_keys` (kid = a fingerprint of the public key), and is
    /// ready to issue and verify. `external_url` is Wharf's configured
    /// external URL (`None`: the realm is derived from each request).
    pub async fn start(
        pool: PgPool,
        config: AuthConfig,
        external_url: Option<String>,
    ) -> Result<Auth, AuthError> {
        validate(&config)?;
        let trusted = TrustedProxies::parse(&config.trusted_proxies)?;
        let path = config.signing_key.clone().ok_or_else(|| {
            AuthError::Config("signing_key (the token signing key file) must be set".into())
        })?;
        let signing = tokio::task::spawn_blocking(move || SigningKey::load_or_generate(&path))
            .await
            .map_err(|e| AuthError::Internal(format!("key loading stopped: {e}")))??;
        let ring = KeyRing::start(pool.clone(), &signing).await?;
        tracing::info!(kid = %signing.kid, "token signing key ready");
        let recheck = Duration::from_secs(config.subject_recheck_secs);
        let tokens = Tokens {
            issuer: config.issuer.clone(),
            service: config.service.clone(),
            lifetime_secs: config.token_lifetime_secs,
            refresh_lifetime_secs: config.refresh_token_lifetime_secs,
            signing,
            ring,
        };
        Ok(Auth {
            inner: Arc::new(Inner {
                pool,
                config,
                external_url: external_url.map(|u| u.trim_end_matches('/').to_owned()),
                trusted,
                tokens,
                subjects: Recent::new(recheck),
                projects: Recent::new(recheck),
            }),
        })
    }

    /// Mounts `GET`+`POST /service/token`, `POST /c/login` and
    /// `GET`+`POST /c/log_out`, and registers `web::Data<Auth>` as app data
    /// (for [`identify`]; call at `App` level).
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(actix_web::web::Data::new(self.clone()));
        http::configure(cfg);
    }

    /// An access token for Wharf's own background work (replication's
    /// local endpoint) granting exactly `scopes` (`repository:p/r:pull,push`,
    /// `registry:catalog:*`). Its subject is [`SERVICE_SUBJECT`], which no
    /// account can be called, so it never passes for a user or robot.
    pub async fn service_token(&self, scopes: &[String]) -> Result<String, AuthError> {
        let access = scopes::Scope::parse_all(scopes.iter().map(String::as_str))
            .into_iter()
            .map(|s| ResourceAccess {
                kind: s.kind,
                name: s.name,
                actions: s.actions,
            })
            .collect();
        // The database's clock, as for every token: see `Tokens::issue_access`.
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(self
            .inner
            .tokens
            .issue_access(SERVICE_SUBJECT, access, now)?
            .token)
    }

    /// The settings this issuer runs with.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// The client's address (see the crate docs on trusted proxies).
    pub fn client_addr(&self, req: &HttpRequest) -> Option<String> {
        self.inner.trusted.client_addr(req)
    }

    /// The token endpoint's URL as clients must call it.
    pub fn realm(&self, req: &HttpRequest) -> String {
        match &self.inner.external_url {
            Some(base) => format!("{base}/service/token"),
            None => format!(
                "{}://{}/service/token",
                self.inner.trusted.scheme(req),
                self.inner.trusted.host(req)
            ),
        }
    }

    /// Whether the client reached Wharf over https (the external URL's
    /// scheme when configured, else the request's).
    pub fn is_https(&self, req: &HttpRequest) -> bool {
        match &self.inner.external_url {
            Some(base) => base.starts_with("https://"),
            None => self.inner.trusted.scheme(req) == "https",
        }
    }

    /// Delete expired sessions and stale failed-login counters.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let sessions = sessions::purge_expired(&self.inner.pool).await?;
        let counters = throttle::purge_stale(&self.inner.pool, &self.inner.config.throttle).await?;
        Ok(sessions + counters)
    }

    /// Run [`Auth::purge_expired`] every `every` until the runtime stops.
    /// Safe with several replicas.
    pub fn spawn_maintenance(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
            loop {
                ticker.tick().await;
                match auth.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "purged expired sessions and counters"),
                    Err(e) => tracing::warn!(error = %e, "session purge failed; will retry"),
                }
            }
        })
    }
}

fn validate(config: &AuthConfig) -> Result<(), AuthError> {
    let fail = |m: &str| Err(AuthError::Config(m.to_owned()));
    if config.service.is_empty() || config.service.contains('"') {
        return fail("service must be non-empty and hold no '\"'");
    }
    if config.issuer.is_empty() {
        return fail("issuer must not be empty");
    }
    if config.robot_prefix.is_empty() {
        return fail("robot_prefix must not be empty");
    }
    if config.token_lifetime_secs == 0
        || config.refresh_token_lifetime_secs == 0
        || config.session_lifetime_secs == 0
    {
        return fail("token, refresh token and session lifetimes must be at least 1 second");
    }
    let t = &config.throttle;
    if t.max_failures_per_user == 0 || t.max_failures_per_address == 0 {
        return fail("throttle limits must be at least 1");
    }
    if t.window_secs == 0 || t.lockout_secs == 0 {
        return fail("throttle window and lockout must be at least 1 second");
    }
    Ok(())
}

/// `bytes` random bytes as unpadded base64url.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

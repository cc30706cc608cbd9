//! Web-console sessions: a random id in the `sid` cookie, only its SHA-256
//! in the `sessions` table (a database dump hands out no live sessions), a
//! random CSRF token per session, and an idle timeout.
//!
//! A session's expiry moves forward when it is used, at most once a minute
//! (so a busy console does not write on every request), and not at all for
//! requests carrying `X-Harbor-No-Session-Renewal` (background polling).

use actix_web::HttpRequest;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use chrono::{DateTime, Utc};
use sha2::Digest as _;
use sqlx::PgPool;
use wharf_projects::User;

use crate::Auth;
use crate::error::AuthError;

/// The session cookie's name (Harbor's).
pub const COOKIE: &str = "sid";
/// The header carrying the CSRF token, both ways (Harbor's).
pub const CSRF_HEADER: &str = "X-Harbor-CSRF-Token";
/// A request header that asks not to extend the session (Harbor's).
pub const NO_RENEWAL_HEADER: &str = "X-Harbor-No-Session-Renewal";
/// A session is extended at most this often (seconds).
const RENEW_EVERY_SECS: f64 = 60.0;

/// A session just made. The id goes into the cookie and nowhere else.
#[derive(Clone)]
pub struct NewSession {
    /// The cookie value.
    pub id: String,
    /// The token unsafe requests must echo in [`CSRF_HEADER`].
    pub csrf_token: String,
    /// When it ends unless used.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("id", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The live session of a request.
#[derive(Clone)]
pub struct Session {
    /// Who is signed in.
    pub user: User,
    /// The token unsafe requests must echo in [`CSRF_HEADER`].
    pub csrf_token: String,
    /// When it ends unless used again.
    pub expires_at: DateTime<Utc>,
    /// Whether this request moved the expiry (the cookie should be re-sent
    /// with a fresh `Max-Age`).
    pub renewed: bool,
    id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.username)
            .field("expires_at", &self.expires_at)
            .field("renewed", &self.renewed)
            .finish_non_exhaustive()
    }
}

fn id_hash(id: &str) -> Vec<u8> {
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

/// Start a session for the user with id `user_id`, idle timeout
/// `lifetime_secs`.
pub async fn create_session(
    pool: &PgPool,
    user_id: i64,
    lifetime_secs: u64,
) -> Result<NewSession, AuthError> {
    let id = crate::random_token(32);
    let csrf_token = crate::random_token(32);
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         RETURNING expires_at",
    )
    .bind(id_hash(&id))
    .bind(user_id)
    .bind(&csrf_token)
    .bind(lifetime_secs as f64)
    .fetch_one(pool)
    .await?;
    Ok(NewSession {
        id,
        csrf_token,
        expires_at,
    })
}

/// The live session with cookie value `id`, its user still existing;
/// extended by `lifetime_secs` when `renew` and last extended over a minute
/// ago.
pub async fn find_session(
    pool: &PgPool,
    id: &str,
    lifetime_secs: u64,
    renew: bool,
) -> Result<Option<Session>, AuthError> {
    let hash = id_hash(id);
    let row: Option<(i64, String, DateTime<Utc>, bool)> = sqlx::query_as(
        "SELECT user_id, csrf_token, expires_at,
                last_seen_at < now() - make_interval(secs => $2)
         FROM sessions WHERE id_hash = $1 AND expires_at > now()",
    )
    .bind(&hash)
    .bind(RENEW_EVERY_SECS)
    .fetch_optional(pool)
    .await?;
    let Some((user_id, csrf_token, mut expires_at, stale)) = row else {
        return Ok(None);
    };
    let user = match wharf_projects::get_user(pool, user_id).await {
        Ok(user) => user,
        Err(wharf_projects::Error::NotFound) => {
            end_session(pool, id).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut renewed = false;
    if renew && stale {
        expires_at = sqlx::query_scalar(
            "UPDATE sessions SET last_seen_at = now(),
                                 expires_at = now() + make_interval(secs => $2)
             WHERE id_hash = $1 RETURNING expires_at",
        )
        .bind(&hash)
        .bind(lifetime_secs as f64)
        .fetch_optional(pool)
        .await?
        .unwrap_or(expires_at);
        renewed = true;
    }
    Ok(Some(Session {
        user,
        csrf_token,
        expires_at,
        renewed,
        id: id.to_owned(),
    }))
}

/// End the session with cookie value `id` (nothing happens if there is none).
pub async fn end_session(pool: &PgPool, id: &str) -> Result<(), AuthError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash(id))
        .execute(pool)
        .await?;
    Ok(())
}

/// Delete every expired session.
pub(crate) async fn purge_expired(pool: &PgPool) -> Result<u64, AuthError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// The `sid` cookie's value, if the request has one.
fn cookie_id(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

impl Auth {
    /// Start a console session for `user`.
    pub async fn create_session(&self, user: &User) -> Result<NewSession, AuthError> {
        create_session(
            &self.inner.pool,
            user.id,
            self.inner.config.session_lifetime_secs,
        )
        .await
    }

    /// The live session the request's cookie names, if any (extending it
    /// unless the request asks not to).
    pub async fn session(&self, req: &HttpRequest) -> Result<Option<Session>, AuthError> {
        let Some(id) = cookie_id(req) else {
            return Ok(None);
        };
        let renew = !req.headers().contains_key(NO_RENEWAL_HEADER);
        find_session(
            &self.inner.pool,
            &id,
            self.inner.config.session_lifetime_secs,
            renew,
        )
        .await
    }

    /// End the session the request's cookie names, if any.
    pub async fn end_session(&self, req: &HttpRequest) -> Result<(), AuthError> {
        match cookie_id(req) {
            Some(id) => end_session(&self.inner.pool, &id).await,
            None => Ok(()),
        }
    }

    /// The `Set-Cookie` for a session id: HttpOnly, SameSite=Lax, Path=/,
    /// Secure on https, Max-Age the idle timeout.
    pub fn session_cookie(&self, req: &HttpRequest, id: &str) -> Cookie<'static> {
        let max_age = i64::try_from(self.inner.config.session_lifetime_secs).unwrap_or(i64::MAX);
        Cookie::build(COOKIE, id.to_owned())
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.is_https(req))
            .max_age(CookieDuration::seconds(max_age))
            .finish()
    }

    /// The cookie that re-sends a renewed session's id with a fresh `Max-Age`.
    pub fn renewed_cookie(&self, req: &HttpRequest, session: &Session) -> Cookie<'static> {
        self.session_cookie(req, &session.id)
    }

    /// The `Set-Cookie` that removes the session cookie.
    pub fn removal_cookie(&self, req: &HttpRequest) -> Cookie<'static> {
        Cookie::build(COOKIE, "")
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.is_https(req))
            .max_age(CookieDuration::ZERO)
            .finish()
    }
}

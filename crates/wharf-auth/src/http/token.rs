//! `/service/token`: the Docker token endpoint.
//!
//! `GET` is the classic flow (Basic credentials optional, `scope` repeated
//! or space-separated, `offline_token=true` for a refresh token); errors use
//! the registry's `{"errors":[…]}` envelope. `POST` is the OAuth2 flow
//! (`grant_type=password` or `refresh_token`); errors use OAuth2's
//! `{"error","error_description"}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use wharf_projects::Principal;
use wharf_projects::http::ApiError;

use crate::Auth;
use crate::credentials::Credentials;
use crate::error::AuthError;
use crate::identify::too_many_requests;
use crate::login::LoginFailure;
use crate::scopes::{self, Scope};
use crate::tokens::{Rejected, ResourceAccess};

#[derive(Serialize)]
struct TokenResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// The row id of the account behind a principal (for refresh tokens).
fn account_id(principal: &Principal) -> Option<i64> {
    match principal {
        Principal::Anonymous => None,
        Principal::User(user) => Some(user.id),
        Principal::Robot { robot, .. } => Some(robot.id),
    }
}

fn params(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn scopes_of(params: &[(String, String)]) -> Vec<Scope> {
    Scope::parse_all(
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
}

/// A missing `service` is taken to mean ours; another one is refused.
fn service_matches(auth: &Auth, params: &[(String, String)]) -> bool {
    first(params, "service").is_none_or(|s| s == auth.config().service)
}

fn internal(e: &AuthError) -> HttpResponse {
    tracing::error!(error = %e, "the token endpoint failed");
    ApiError::internal().error_response()
}

/// Sign an access token for `principal` over `scopes` (and a refresh token
/// when asked and signed in).
async fn issue(
    auth: &Auth,
    principal: &Principal,
    scopes: &[Scope],
    want_refresh: bool,
    with_scope: bool,
) -> Result<TokenResponse, AuthError> {
    let inner = &auth.inner;
    let granted = scopes::grant(&inner.pool, principal, scopes).await?;
    let scope = with_scope.then(|| granted_scope(&granted));
    let sub = principal.name().unwrap_or("");
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&inner.pool)
        .await?;
    let issued = inner.tokens.issue_access(sub, granted, now)?;
    let refresh_token = match account_id(principal) {
        Some(uid) if want_refresh => Some(inner.tokens.issue_refresh(sub, uid)?),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: issued.token.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
        issued_at: issued.issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        scope,
        refresh_token,
    })
}

/// The OAuth2 `scope` of a reply: what was granted, space-separated.
fn granted_scope(granted: &[ResourceAccess]) -> String {
    granted
        .iter()
        .filter(|a| !a.actions.is_empty())
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn no_store(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /service/token`.
pub(crate) async fn get(req: HttpRequest, auth: web::Data<Auth>) -> HttpResponse {
    let params = params(req.query_string().as_bytes());
    if !service_matches(&auth, &params) {
        return ApiError::bad_request("unknown service").error_response();
    }
    let scopes = scopes_of(&params);
    let principal = match Credentials::of(&req) {
        None => Principal::Anonymous,
        Some(Credentials::Basic { name, secret }) => {
            let client_addr = auth.client_addr(&req);
            match auth.login(&name, &secret, client_addr.as_deref()).await {
                Ok(Ok(principal)) => principal,
                Ok(Err(LoginFailure::Throttled { retry_after_secs })) => {
                    return too_many_requests(retry_after_secs);
                }
                Ok(Err(failure)) => {
                    return ApiError::unauthorized(failure.message()).error_response();
                }
                Err(e) => return internal(&e),
            }
        }
        Some(_) => {
            return ApiError::unauthorized("the token endpoint takes Basic credentials")
                .error_response();
        }
    };
    if !principal.is_authenticated() && scopes.is_empty() {
        return ApiError::unauthorized("authentication required").error_response();
    }
    let offline = first(&params, "offline_token").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match issue(&auth, &principal, &scopes, offline, false).await {
        Ok(body) => no_store(HttpResponse::Ok().json(body)),
        Err(e) => internal(&e),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    no_store(HttpResponse::build(status).json(serde_json::json!({
        "error": error,
        "error_description": description,
    })))
}

/// `POST /service/token` (form-encoded OAuth2 grants).
pub(crate) async fn post(
    body: web::Bytes,
    req: HttpRequest,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let params = params(&body);
    if !service_matches(&auth, &params) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown service",
        );
    }
    let scopes = scopes_of(&params);
    let (principal, want_refresh) = match first(&params, "grant_type") {
        Some("password") => {
            let (Some(name), Some(password)) =
                (first(&params, "username"), first(&params, "password"))
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the password grant needs username and password",
                );
            };
            let client_addr = auth.client_addr(&req);
            let principal = match auth.login(name, password, client_addr.as_deref()).await {
                Ok(Ok(principal)) => principal,
                Ok(Err(LoginFailure::Throttled { retry_after_secs })) => {
                    let mut resp = oauth_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_requests",
                        LoginFailure::Throttled { retry_after_secs }.message(),
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                    return resp;
                }
                Ok(Err(failure)) => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        failure.message(),
                    );
                }
                Err(e) => return internal(&e),
            };
            let offline = first(&params, "access_type") == Some("offline");
            (principal, offline)
        }
        Some("refresh_token") => {
            let Some(token) = first(&params, "refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the refresh_token grant needs refresh_token",
                );
            };
            match refreshed_principal(&auth, token).await {
                Ok(Some(principal)) => (principal, false),
                Ok(None) => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        "the refresh token is invalid or its account is gone",
                    );
                }
                Err(e) => return internal(&e),
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be password or refresh_token",
            );
        }
    };
    match issue(&auth, &principal, &scopes, want_refresh, true).await {
        Ok(body) => no_store(HttpResponse::Ok().json(body)),
        Err(e) => internal(&e),
    }
}

/// The account a refresh token was issued to, if the token verifies and the
/// very same account (same row) still exists and may sign in.
async fn refreshed_principal(auth: &Auth, token: &str) -> Result<Option<Principal>, AuthError> {
    let inner = &auth.inner;
    let claims = match inner.tokens.verify_refresh(token).await {
        Ok(claims) => claims,
        Err(Rejected::Invalid(reason)) => {
            tracing::debug!(reason, "refused a refresh token");
            return Ok(None);
        }
        Err(Rejected::Internal(e)) => return Err(e),
    };
    let prefix = &inner.config.robot_prefix;
    let principal = if let Some(name) = claims.sub.strip_prefix(prefix.as_str()) {
        match wharf_projects::robots::get_robot_by_name(&inner.pool, name).await {
            Ok(robot)
                if robot.id == claims.uid
                    && !robot.disabled
                    && !robot.is_expired(chrono::Utc::now()) =>
            {
                Principal::Robot {
                    login_name: claims.sub.clone(),
                    robot,
                }
            }
            Ok(_) | Err(wharf_projects::Error::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    } else {
        match wharf_projects::get_user_by_name(&inner.pool, &claims.sub).await {
            Ok(user) if user.id == claims.uid => Principal::User(user),
            Ok(_) | Err(wharf_projects::Error::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Some(principal))
}

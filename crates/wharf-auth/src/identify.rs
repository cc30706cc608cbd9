//! Identification for `/api/v2.0` (and the console): who is calling, left in
//! the request extensions as a [`Caller`] for the handlers' extractor.
//!
//! Basic credentials win (bad ones are `401`, a throttled login `429`); else
//! a valid `sid` cookie signs the user in, and then unsafe methods must echo
//! the session's CSRF token (a cross-site form can send the cookie, never the
//! header); else the caller is anonymous. An unknown or expired cookie is
//! simply anonymous: the handlers decide whether that is enough.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use subtle::ConstantTimeEq as _;
use wharf_projects::http::ApiError;
use wharf_projects::{Caller, Principal};

use crate::Auth;
use crate::credentials::Credentials;
use crate::login::LoginFailure;
use crate::sessions::CSRF_HEADER;

const CSRF: HeaderName = HeaderName::from_static("x-harbor-csrf-token");

/// actix `middleware::from_fn` middleware for the `/api/v2.0` scope (and the
/// console): identifies the caller and inserts a [`Caller`] into the request
/// extensions. Needs [`Auth::configure`] at `App` level.
pub async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(auth) = req.app_data::<web::Data<Auth>>().cloned() else {
        tracing::error!("identify runs without Auth app data: call Auth::configure at App level");
        return Ok(req.into_response(ApiError::internal().error_response()));
    };
    let client_addr = auth.client_addr(req.request());
    let mut session_extras = None;
    let principal = match Credentials::of(req.request()) {
        Some(Credentials::Basic { name, secret }) => {
            match auth.login(&name, &secret, client_addr.as_deref()).await {
                Ok(Ok(principal)) => principal,
                Ok(Err(LoginFailure::Throttled { retry_after_secs })) => {
                    return Ok(req.into_response(too_many_requests(retry_after_secs)));
                }
                Ok(Err(failure)) => {
                    let refused = ApiError::unauthorized(failure.message());
                    return Ok(req.into_response(refused.error_response()));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot check API credentials");
                    return Ok(req.into_response(ApiError::internal().error_response()));
                }
            }
        }
        // Tokens are for /v2; anything else falls back to the session.
        _ => match auth.session(req.request()).await {
            Ok(Some(session)) => {
                if is_unsafe(req.method()) && !csrf_matches(&req, &session.csrf_token) {
                    let refused = ApiError::forbidden("CSRF token invalid");
                    return Ok(req.into_response(refused.error_response()));
                }
                let cookie = session
                    .renewed
                    .then(|| auth.renewed_cookie(req.request(), &session));
                session_extras = Some((session.csrf_token.clone(), cookie));
                Principal::User(session.user)
            }
            Ok(None) => Principal::Anonymous,
            Err(e) => {
                tracing::error!(error = %e, "cannot look up a console session");
                return Ok(req.into_response(ApiError::internal().error_response()));
            }
        },
    };
    req.extensions_mut().insert(Caller {
        principal,
        client_addr,
    });
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some((csrf, cookie)) = session_extras {
        if let Ok(value) = HeaderValue::from_str(&csrf) {
            res.headers_mut().insert(CSRF, value);
        }
        if let Some(cookie) = cookie
            && let Err(e) = res.response_mut().add_cookie(&cookie)
        {
            tracing::warn!(error = %e, "cannot re-send a renewed session cookie");
        }
    }
    Ok(res)
}

fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether the request echoes `expected` in the CSRF header (compared in
/// constant time, so the token cannot be guessed byte by byte).
fn csrf_matches(req: &ServiceRequest, expected: &str) -> bool {
    req.headers()
        .get(CSRF_HEADER)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// `429 TOO_MANY_REQUEST` with `Retry-After`.
pub(crate) fn too_many_requests(retry_after_secs: u64) -> HttpResponse {
    let error = ApiError::too_many_requests(LoginFailure::Throttled { retry_after_secs }.message());
    let mut resp = error.error_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

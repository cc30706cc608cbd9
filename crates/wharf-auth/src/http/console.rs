//! The console's sign-in and sign-out (Harbor's `/c/login`, `/c/log_out`).

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use wharf_projects::Principal;
use wharf_projects::http::ApiError;

use crate::Auth;
use crate::identify::too_many_requests;
use crate::login::LoginFailure;

const CSRF: HeaderName = HeaderName::from_static("x-harbor-csrf-token");

/// The sign-in form. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    principal: String,
    password: String,
}

/// `POST /c/login`: check the password (throttled like every login), start a
/// session, set the `sid` cookie and hand out the CSRF token.
pub(crate) async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    // A cross-site page must not sign the browser into an account of the
    // attacker's choosing (login CSRF); browsers say where a request is from.
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return ApiError::forbidden("cross-site sign-in refused").error_response();
    }
    let form = form.into_inner();
    if form.principal.starts_with(&auth.config().robot_prefix) {
        return ApiError::unauthorized("robot accounts cannot sign in to the console")
            .error_response();
    }
    let client_addr = auth.client_addr(&req);
    let user = match auth
        .login(&form.principal, &form.password, client_addr.as_deref())
        .await
    {
        Ok(Ok(Principal::User(user))) => user,
        Ok(Ok(_)) => {
            return ApiError::unauthorized(LoginFailure::BadCredentials.message()).error_response();
        }
        Ok(Err(LoginFailure::Throttled { retry_after_secs })) => {
            return too_many_requests(retry_after_secs);
        }
        Ok(Err(failure)) => return ApiError::unauthorized(failure.message()).error_response(),
        Err(e) => {
            tracing::error!(error = %e, "console sign-in failed");
            return ApiError::internal().error_response();
        }
    };
    let session = match auth.create_session(&user).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a console session");
            return ApiError::internal().error_response();
        }
    };
    let mut resp = HttpResponse::Ok()
        .cookie(auth.session_cookie(&req, &session.id))
        .finish();
    if let Ok(value) = HeaderValue::from_str(&session.csrf_token) {
        resp.headers_mut().insert(CSRF, value);
    }
    resp
}

/// `GET`/`POST /c/log_out`: end the session and remove the cookie.
pub(crate) async fn log_out(req: HttpRequest, auth: web::Data<Auth>) -> HttpResponse {
    if let Err(e) = auth.end_session(&req).await {
        tracing::error!(error = %e, "cannot end a console session");
        return ApiError::internal().error_response();
    }
    HttpResponse::Ok()
        .cookie(auth.removal_cookie(&req))
        .finish()
}

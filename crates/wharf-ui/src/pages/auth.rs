//! Signing in and out, `/` and the viewer's own account page.
//!
//! Signing in uses `wharf-auth`'s login (throttled, audited like every other
//! login) and its sessions, so a console session is the same thing as one
//! `/c/login` makes. The sign-in form has no session and so no CSRF token
//! yet; a login CSRF (signing the victim into the attacker's account) is
//! stopped by refusing posts the browser marks as cross-site or whose
//! `Origin` is another host.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use wharf_projects::Principal;
use wharf_projects::users::password_matches;

use super::form_failed;
use crate::error::{UiError, UiResult};
use crate::format::{enc, safe_next};
use crate::layout::{self, Chrome};
use crate::session::{MaybeViewer, PostedForm, Services, Viewer, anonymous_flash};

/// The sign-in page's URL that returns to `next` afterwards.
pub(crate) fn login_url(next: &str) -> String {
    if next == "/" || next.is_empty() {
        "/login".to_owned()
    } else {
        format!("/login?next={}", enc(next))
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    username: String,
    error: Option<String>,
}

fn sign_in_page(
    req: &HttpRequest,
    next: String,
    username: String,
    error: Option<String>,
) -> SignInPage {
    let mut chrome = Chrome::bare("Sign in");
    chrome.flash = anonymous_flash(req);
    SignInPage {
        chrome,
        next,
        username,
        error,
    }
}

/// `GET /`: the projects for a signed-in viewer, the sign-in page for
/// anybody else.
pub(crate) async fn home(req: HttpRequest, viewer: MaybeViewer) -> HttpResponse {
    match viewer.0 {
        Some(_) => layout::see_other("/projects", None),
        None => layout::ok(&sign_in_page(&req, "/projects".into(), String::new(), None)),
    }
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(crate) async fn login_page(
    req: HttpRequest,
    viewer: MaybeViewer,
    query: actix_web::web::Query<NextQuery>,
) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if viewer.0.is_some() {
        return layout::see_other(&next, None);
    }
    layout::ok(&sign_in_page(&req, next, String::new(), None))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// Whether the browser says the post came from another site.
fn cross_site(req: &HttpRequest) -> bool {
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    let host = req.connection_info().host().to_owned();
    let foreign_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|o| url::Url::parse(o).ok())
        .is_some_and(|o| {
            let origin_host = match o.port() {
                Some(port) => format!("{}:{port}", o.host_str().unwrap_or_default()),
                None => o.host_str().unwrap_or_default().to_owned(),
            };
            origin_host != host
        });
    fetch_site || foreign_origin
}

/// `POST /login`.
pub(crate) async fn login(
    req: HttpRequest,
    services: Services,
    PostedForm(form): PostedForm<LoginForm>,
) -> UiResult<HttpResponse> {
    let next = safe_next(form.next.as_deref());
    if cross_site(&req) {
        return Err(UiError::Forbidden(
            "Signing in from another site's form is refused.".into(),
        ));
    }
    let auth = &services.auth;
    let refuse = |message: &str| {
        layout::html(
            actix_web::http::StatusCode::UNAUTHORIZED,
            &sign_in_page(
                &req,
                next.clone(),
                form.username.clone(),
                Some(message.to_owned()),
            ),
        )
    };
    if form.username.starts_with(&auth.config().robot_prefix) {
        return Ok(refuse("Robot accounts cannot sign in to the console."));
    }
    let client_addr = auth.client_addr(&req);
    let user = match auth
        .login(&form.username, &form.password, client_addr.as_deref())
        .await?
    {
        Ok(Principal::User(user)) => user,
        Ok(_) => return Ok(refuse("Invalid username or password.")),
        Err(wharf_auth::LoginFailure::Throttled { retry_after_secs }) => {
            return Ok(refuse(&format!(
                "Too many failed sign-ins. Try again in {retry_after_secs} seconds."
            )));
        }
        Err(failure) => return Ok(refuse(&capitalised(failure.message()))),
    };
    let session = auth.create_session(&user).await?;
    let mut resp = layout::see_other(&next, None);
    resp.add_cookie(&auth.session_cookie(&req, &session.id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot set the session cookie");
            UiError::Internal
        })?;
    Ok(resp)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// `POST /logout` (CSRF-checked like every post, so another site cannot
/// sign the viewer out).
pub(crate) async fn logout(
    req: HttpRequest,
    services: Services,
    _viewer: Viewer,
) -> UiResult<HttpResponse> {
    services.auth.end_session(&req).await?;
    let mut resp = layout::see_other("/login", Some("You are signed out."));
    resp.add_cookie(&services.auth.removal_cookie(&req))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot clear the session cookie");
            UiError::Internal
        })?;
    Ok(resp)
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    username: String,
    email: String,
    realname: String,
    sysadmin: bool,
    created: String,
}

/// `GET /account`: the viewer's profile and the password form.
pub(crate) async fn account(viewer: Viewer) -> HttpResponse {
    let user = &viewer.user;
    layout::ok(&AccountPage {
        chrome: Chrome::new(&viewer, "Your account", "account"),
        username: user.username.clone(),
        email: user.email.clone().unwrap_or_default(),
        realname: user.realname.clone(),
        sysadmin: user.sysadmin,
        created: crate::format::time(user.created_at),
    })
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    old_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /account/password`.
pub(crate) async fn change_password(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<PasswordForm>,
) -> HttpResponse {
    let done = async {
        if form.new_password != form.confirm_password {
            return Err(UiError::BadRequest(
                "The new password and its confirmation differ.".into(),
            ));
        }
        if !password_matches(services.pool.get_ref(), viewer.user.id, &form.old_password).await? {
            return Err(UiError::BadRequest("The current password is wrong.".into()));
        }
        wharf_projects::set_password(services.pool.get_ref(), viewer.user.id, &form.new_password)
            .await?;
        Ok(layout::see_other(
            "/account",
            Some("Your password was changed."),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, "/account", "password"))
}

//! Who is looking at the console, and the CSRF rule for what they post.
//!
//! [`console_layer`] wraps every console route. It looks the `sid` cookie up
//! with `wharf-auth`'s session functions (the same sessions `/c/login`
//! makes), leaves a [`Viewer`] in the request for the handlers, re-sends the
//! cookie when the session was extended, and shows a flash message once.
//!
//! Every `POST` is checked here, before any handler runs: the body must be a
//! form whose `csrf` field equals the session's token (compared in constant
//! time). A cross-site form can make the browser send the cookie, never the
//! token, so a post without it is refused with a page saying so. The
//! sign-in form is the only post without a session; it is guarded by the
//! browser's `Sec-Fetch-Site` and `Origin` instead (see `pages::auth`).
//! Handlers read the already-checked body with [`PostedForm`].

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use subtle::ConstantTimeEq as _;
use wharf_auth::Auth;
use wharf_projects::http::ApiSettings;
use wharf_projects::{Caller, Principal, User};
use wharf_registry::Registry;
use wharf_replication::registries::Registries;

use crate::error::{UiError, UiResult};
use crate::layout::{FLASH_COOKIE, Flash, flash_removal, flash_text};

/// The largest form the console accepts.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The signed-in user of a console request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who is signed in.
    pub user: User,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The same person as the services see callers: principal and address.
    pub caller: Caller,
    /// The message the previous action left, shown once.
    pub flash: Option<Flash>,
}

impl Viewer {
    /// The principal for access decisions.
    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    /// The caller as the registry's seams name it (for deletes and tags).
    pub fn registry_actor(&self) -> wharf_registry::seams::Principal {
        wharf_registry::seams::Principal {
            name: Some(self.user.username.clone()),
            client_addr: self.caller.client_addr.clone(),
        }
    }

    /// Refuse unless the viewer is a system administrator.
    pub fn require_sysadmin(&self) -> UiResult<()> {
        if self.user.sysadmin {
            Ok(())
        } else {
            Err(UiError::Forbidden(
                "Only system administrators can open the Administration pages.".into(),
            ))
        }
    }
}

/// A viewer that may be nobody (the sign-in page, `/`).
pub struct MaybeViewer(pub Option<Viewer>);

/// The flash message of a request without a viewer.
#[derive(Debug, Clone)]
struct AnonymousFlash(Flash);

/// The body of a `POST` whose CSRF token was checked.
#[derive(Debug, Clone)]
struct CheckedForm(Bytes);

impl FromRequest for Viewer {
    type Error = UiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Viewer>().cloned().ok_or_else(|| {
            let next = match req.method() {
                // After signing in, a form post is not repeated: go back
                // to the page it was on.
                &Method::GET => req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned(),
                _ => "/".to_owned(),
            };
            UiError::SignIn { next }
        }))
    }
}

impl FromRequest for MaybeViewer {
    type Error = UiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(MaybeViewer(req.extensions().get::<Viewer>().cloned())))
    }
}

/// A posted form, deserialised from the body [`console_layer`] checked.
/// Repeated keys (`access=a&access=b`) fill `Vec` fields.
pub struct PostedForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest for PostedForm<T> {
    type Error = UiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(CheckedForm(body)) = req.extensions().get::<CheckedForm>().cloned() else {
            // Only reachable if a route is mounted outside the layer.
            tracing::error!(
                path = req.path(),
                "a console form was read without a CSRF check"
            );
            return ready(Err(UiError::Csrf));
        };
        ready(
            serde_html_form::from_bytes::<T>(&body)
                .map(PostedForm)
                .map_err(|e| UiError::BadRequest(format!("The form could not be read: {e}."))),
        )
    }
}

/// The services a console handler calls, from the app data the gateway
/// registers for the REST API too (so both call the same instances).
#[derive(Clone)]
pub struct Services {
    pub pool: web::Data<PgPool>,
    pub api: web::Data<ApiSettings>,
    pub auth: web::Data<Auth>,
    pub registry: Option<web::Data<Registry>>,
    pub registries: Option<web::Data<Registries>>,
}

impl Services {
    /// The registry, for tag and delete operations.
    pub fn registry(&self) -> UiResult<&Registry> {
        match &self.registry {
            Some(r) => Ok(r.get_ref()),
            None => {
                tracing::error!("the console runs without the registry as app data");
                Err(UiError::Internal)
            }
        }
    }

    /// The replication endpoints, for the registries and replication pages.
    pub fn registries(&self) -> UiResult<&Registries> {
        match &self.registries {
            Some(r) => Ok(r.get_ref()),
            None => {
                tracing::error!("the console runs without the replication registries as app data");
                Err(UiError::Internal)
            }
        }
    }

    /// `host[:port]` that clients pull from: the configured external URL's,
    /// else the one this request reached (behind trusted proxies, their
    /// forwarded host), as the token realm is computed.
    pub fn registry_host(&self, req: &HttpRequest) -> String {
        let base = match &self.api.external_url {
            Some(url) => url.clone(),
            None => self.auth.realm(req),
        };
        match url::Url::parse(&base) {
            Ok(url) => {
                let host = url.host_str().unwrap_or("localhost").to_owned();
                match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            }
            Err(_) => "localhost".to_owned(),
        }
    }
}

impl FromRequest for Services {
    type Error = UiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let services = (|| {
            Some(Services {
                pool: req.app_data::<web::Data<PgPool>>()?.clone(),
                api: req.app_data::<web::Data<ApiSettings>>()?.clone(),
                auth: req.app_data::<web::Data<Auth>>()?.clone(),
                registry: req.app_data::<web::Data<Registry>>().cloned(),
                registries: req.app_data::<web::Data<Registries>>().cloned(),
            })
        })();
        ready(services.ok_or_else(|| {
            tracing::error!(
                "the console needs PgPool, ApiSettings and Auth as app data (see wharf_ui::configure)"
            );
            UiError::Internal
        }))
    }
}

/// The value of the form field `csrf`, if the body has one.
fn csrf_field(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// actix `from_fn` middleware around every console route: identifies the
/// viewer, checks the CSRF token of every `POST`, shows flash messages once.
pub async fn console_layer(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(auth) = req.app_data::<web::Data<Auth>>().cloned() else {
        tracing::error!("the console runs without Auth app data: call Auth::configure");
        return Ok(req.into_response(UiError::Internal.error_response()));
    };
    let session = match auth.session(req.request()).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a console session");
            return Ok(req.into_response(UiError::Internal.error_response()));
        }
    };
    let flash = req.cookie(FLASH_COOKIE).and_then(|c| flash_text(c.value()));
    let had_flash_cookie = req.cookie(FLASH_COOKIE).is_some();
    let is_login = req.path() == "/login";
    if req.method() == Method::POST && !is_login {
        let Some(session) = &session else {
            // The session ended (or never was): nothing may be changed.
            // Signing in again brings the user back to where they were.
            let next = req
                .headers()
                .get(actix_web::http::header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| url::Url::parse(r).ok())
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                })
                .unwrap_or_else(|| "/".to_owned());
            return Ok(req.into_response(UiError::SignIn { next }.error_response()));
        };
        let body = match req.extract::<Bytes>().await {
            Ok(body) if body.len() <= MAX_FORM_BYTES => body,
            _ => {
                let e = UiError::BadRequest("The form is too large or could not be read.".into());
                return Ok(req.into_response(e.error_response()));
            }
        };
        let given = csrf_field(&body).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(session.csrf_token.as_bytes())) {
            tracing::warn!(
                path = req.path(),
                user = %session.user.username,
                "console form refused: missing or wrong CSRF token"
            );
            // The refusal is a page of the session's own console (a page
            // another site posted to cannot read it).
            let viewer = Viewer {
                csrf: session.csrf_token.clone(),
                caller: Caller {
                    principal: Principal::User(session.user.clone()),
                    client_addr: auth.client_addr(req.request()),
                },
                user: session.user.clone(),
                flash: None,
            };
            return Ok(req.into_response(UiError::Csrf.page_for(&viewer)));
        }
        req.extensions_mut().insert(CheckedForm(body));
    } else if is_login && req.method() == Method::POST {
        match req.extract::<Bytes>().await {
            Ok(body) if body.len() <= MAX_FORM_BYTES => {
                req.extensions_mut().insert(CheckedForm(body));
            }
            _ => {
                let e = UiError::BadRequest("The form is too large or could not be read.".into());
                return Ok(req.into_response(e.error_response()));
            }
        }
    }
    let renewed = session
        .as_ref()
        .filter(|s| s.renewed)
        .map(|s| auth.renewed_cookie(req.request(), s));
    match session {
        Some(session) => {
            let client_addr = auth.client_addr(req.request());
            let viewer = Viewer {
                csrf: session.csrf_token.clone(),
                caller: Caller {
                    principal: Principal::User(session.user.clone()),
                    client_addr,
                },
                user: session.user,
                flash: flash.clone(),
            };
            req.extensions_mut().insert(viewer);
        }
        None => {
            if let Some(flash) = &flash {
                req.extensions_mut().insert(AnonymousFlash(flash.clone()));
            }
        }
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    // A handler's error page, re-drawn with the viewer's navigation (the
    // error itself cannot see who is asking).
    let signed_in_error = res
        .response()
        .error()
        .and_then(|e| e.as_error::<UiError>())
        .cloned()
        .zip(res.request().extensions().get::<Viewer>().cloned());
    if let Some((error, viewer)) = signed_in_error {
        let page = error.page_for(&viewer);
        res = res.into_response(page);
    }
    // A redirect carries the message on; every other answer showed it.
    let redirect = res.status().is_redirection();
    let response = res.response_mut();
    if let Some(cookie) = renewed
        && let Err(e) = response.add_cookie(&cookie)
    {
        tracing::warn!(error = %e, "cannot re-send a renewed session cookie");
    }
    if had_flash_cookie && !redirect {
        let sets_new = response.cookies().any(|c| c.name() == FLASH_COOKIE);
        if !sets_new && let Err(e) = response.add_cookie(&flash_removal()) {
            tracing::warn!(error = %e, "cannot clear a flash message");
        }
    }
    Ok(res)
}

/// The flash message of a request without a signed-in viewer.
pub fn anonymous_flash(req: &HttpRequest) -> Option<Flash> {
    req.extensions()
        .get::<AnonymousFlash>()
        .map(|f| f.0.clone())
}

/// The fields of the request's checked form, except the CSRF token and the
/// confirmation (for re-posting it from a confirmation page).
pub fn posted_fields(req: &HttpRequest) -> Vec<(String, String)> {
    req.extensions()
        .get::<CheckedForm>()
        .map(|CheckedForm(body)| {
            url::form_urlencoded::parse(body)
                .filter(|(k, _)| k != "csrf" && k != "confirm")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

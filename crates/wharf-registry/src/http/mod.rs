//! The `/v2` HTTP surface. One dispatcher recognises the route (names span
//! several segments, so actix's router cannot), asks the authoriser for exactly
//! the access the route needs, and hands over to the handler module.

mod blobs;
mod body;
mod listing;
mod manifests;
mod referrers;
pub(crate) mod routes;
mod uploads;

pub(crate) use manifests::delete_reference;

use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use wharf_oci::ErrorCode;

use crate::Inner;
use crate::error::{RegistryError, Result};
use crate::seams::{Access, Action, Principal};
use routes::Route;

const API_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("docker-distribution-api-version"),
    HeaderValue::from_static("registry/2.0"),
);

pub(crate) fn configure(cfg: &mut web::ServiceConfig, inner: web::Data<Inner>) {
    cfg.app_data(inner)
        .service(web::resource(["/v2", "/v2/"]).to(dispatch))
        .service(web::resource("/v2/{rest:.+}").to(dispatch));
}

/// Every registry response carries the API version header, errors included.
async fn dispatch(req: HttpRequest, payload: web::Payload, reg: web::Data<Inner>) -> HttpResponse {
    let mut resp = match handle(&req, payload, &reg).await {
        Ok(resp) => resp,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    resp.headers_mut().insert(API_VERSION.0, API_VERSION.1);
    resp
}

fn method_not_allowed() -> RegistryError {
    RegistryError::Distribution(
        wharf_oci::DistributionError::new(
            ErrorCode::Unsupported,
            "method not allowed on this endpoint",
        )
        .with_status(405),
    )
}

async fn authorize(req: &HttpRequest, reg: &Inner, access: Access) -> Result<Principal> {
    Ok(reg.authorizer.authorize(req, &[access]).await?)
}

fn repo_access(name: &wharf_oci::RepositoryName, actions: &[Action]) -> Access {
    Access::Repository {
        name: name.clone(),
        actions: actions.to_vec(),
    }
}

async fn handle(req: &HttpRequest, payload: web::Payload, reg: &Inner) -> Result<HttpResponse> {
    let rest = req.path().strip_prefix("/v2").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let Some(route) = Route::parse(rest)? else {
        return Err(RegistryError::Distribution(
            wharf_oci::DistributionError::new(ErrorCode::Unsupported, "no such registry endpoint")
                .with_status(404),
        ));
    };
    let method = req.method().clone();
    let is = |m: &Method| method == *m;
    let read = is(&Method::GET) || is(&Method::HEAD);
    match route {
        Route::Base if read => {
            authorize(req, reg, Access::Base).await?;
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .body("{}"))
        }
        Route::Catalog if is(&Method::GET) => {
            authorize(req, reg, Access::Catalog).await?;
            listing::catalog(req, reg).await
        }
        Route::Tags(name) if is(&Method::GET) => {
            authorize(req, reg, repo_access(&name, &[Action::Pull])).await?;
            listing::tags(req, reg, &name).await
        }
        Route::Manifest(name, reference) => {
            if read {
                let who = authorize(req, reg, repo_access(&name, &[Action::Pull])).await?;
                manifests::get(req, reg, &name, &reference, who, is(&Method::HEAD)).await
            } else if is(&Method::PUT) {
                let who =
                    authorize(req, reg, repo_access(&name, &[Action::Pull, Action::Push])).await?;
                manifests::put(req, payload, reg, &name, &reference, who).await
            } else if is(&Method::DELETE) {
                let who = authorize(req, reg, repo_access(&name, &[Action::Delete])).await?;
                manifests::delete(reg, &name, &reference, who).await
            } else {
                Err(method_not_allowed())
            }
        }
        Route::Blob(name, digest) => {
            if read {
                authorize(req, reg, repo_access(&name, &[Action::Pull])).await?;
                blobs::get(req, reg, &name, &digest, is(&Method::HEAD)).await
            } else if is(&Method::DELETE) {
                authorize(req, reg, repo_access(&name, &[Action::Delete])).await?;
                blobs::delete(reg, &name, &digest).await
            } else {
                Err(method_not_allowed())
            }
        }
        Route::UploadStart(name) if is(&Method::POST) => {
            authorize(req, reg, repo_access(&name, &[Action::Pull, Action::Push])).await?;
            uploads::start(req, payload, reg, &name).await
        }
        Route::Upload(name, id) => {
            authorize(req, reg, repo_access(&name, &[Action::Pull, Action::Push])).await?;
            match method {
                Method::GET => uploads::status(reg, &name, id).await,
                Method::PATCH => uploads::patch(req, payload, reg, &name, id).await,
                Method::PUT => uploads::put(req, payload, reg, &name, id).await,
                Method::DELETE => uploads::cancel(reg, &name, id).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::Referrers(name, digest) if is(&Method::GET) => {
            authorize(req, reg, repo_access(&name, &[Action::Pull])).await?;
            referrers::list(req, reg, &name, &digest).await
        }
        _ => Err(method_not_allowed()),
    }
}

/// A digest from a path or query parameter; `DIGEST_INVALID` saying why not.
pub(crate) fn parse_digest(value: &str) -> Result<wharf_oci::Digest> {
    wharf_oci::Digest::parse(value).map_err(|e| {
        RegistryError::with_detail(
            ErrorCode::DigestInvalid,
            "invalid digest",
            serde_json::json!({ "digest": value, "reason": e.to_string() }),
        )
    })
}

/// The value of a query parameter (first occurrence), percent-decoded.
pub(crate) fn query_param(req: &HttpRequest, key: &str) -> Option<String> {
    query_params(req, key).into_iter().next()
}

/// Every value of a query parameter, percent-decoded.
pub(crate) fn query_params(req: &HttpRequest, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

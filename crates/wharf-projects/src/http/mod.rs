//! The Harbor-compatible REST API (`/api/v2.0`) over this crate's domain.
//!
//! Handlers are thin: parse and validate the request, ask [`Caller`] and
//! [`crate::ProjectAccess`] whether it is allowed, call the domain function,
//! shape the answer as Harbor does. Who the caller is was decided before the
//! handler runs, by the identification middleware of `wharf-auth`, which
//! leaves a [`Caller`] in the request extensions; a request it did not see
//! is anonymous, so a missing middleware denies rather than allows.
//!
//! Mount with [`configure`] inside the `/api/v2.0` scope.

pub mod error;
pub mod paging;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use std::future::{Ready, ready};

pub use error::ApiError;
pub use paging::{PageParams, paginated};

use crate::security::Caller;

/// Facts about this installation the API reports (`/systeminfo`) and needs
/// (absolute links), provided by the gateway as app data.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// The URL clients reach Wharf at, if configured (`external_url`).
    pub external_url: Option<String>,
    /// Wharf's version, reported as `harbor_version`.
    pub version: String,
    /// The blob store backend (`filesystem`, `s3`, `memory`).
    pub storage_provider: String,
    /// The login-name prefix of robot accounts (`robot$`).
    pub robot_prefix: String,
}

/// Mount every API route (paths relative to the `/api/v2.0` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let _ = cfg;
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller::anonymous(req.peer_addr().map(|a| a.ip().to_string())));
        ready(Ok(caller))
    }
}

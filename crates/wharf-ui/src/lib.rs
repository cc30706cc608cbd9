//! Wharf's web console: server-rendered pages (askama templates under
//! `web/templates`, assets under `web/static` compiled into the binary) for
//! signing in, projects, repositories and artifacts (with their labels),
//! members, robot accounts, labels, immutable tags and tag retention, and
//! Administration (users, system robots, registry endpoints, replication
//! policies and their executions, configuration, garbage collection, the
//! audit log).
//!
//! Handlers call the same domain functions of `wharf-projects` and the same
//! registry operations as the REST API, and decide access with the same
//! [`wharf_projects::ProjectAccess`], so the console can neither do more nor
//! show more than the API would allow the same person. Sessions are
//! `wharf-auth`'s (the `sid` cookie `/c/login` sets); every form post carries
//! the session's CSRF token in a hidden field, checked before any handler
//! runs (see [`session`]).
//!
//! Mount with [`configure`] after the API, `/v2`, `/service`, `/c` and the
//! probes: the console only registers its own paths, so it never shadows
//! theirs.

pub mod access;
pub mod assets;
pub mod error;
pub mod format;
pub mod layout;
pub mod paging;
pub mod session;

mod pages;

use actix_web::middleware::from_fn;
use actix_web::web;

/// Mount the console's pages, its form handlers and `/static`. Needs the
/// app data the gateway registers for the REST API: `web::Data<PgPool>`,
/// `web::Data<ApiSettings>`, `web::Data<Auth>` (from `Auth::configure`),
/// `web::Data<Registry>` and `web::Data<Registries>` (replication's endpoints).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/{name}").route(web::get().to(assets::serve)));
    // One resource per path (a second resource with the same path would
    // never be reached), each behind the console's session and CSRF layer.
    for (path, routes) in pages::routes() {
        let mut resource = web::resource(path).wrap(from_fn(session::console_layer));
        for route in routes {
            resource = resource.route(route);
        }
        cfg.service(resource);
    }
}

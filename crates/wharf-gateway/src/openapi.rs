//! The OpenAPI document of `/api/v2.0`, generated from the handlers'
//! annotations, served at `/api/v2.0/openapi.json`, and Swagger UI at
//! `/devcenter` with its assets compiled into the binary (no CDN: it works
//! on an offline network).

use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v2.0/openapi.json";

/// The whole `/api/v2.0` document.
pub fn document() -> utoipa::openapi::OpenApi {
    wharf_projects::http::openapi()
}

/// Mount the document and Swagger UI. Register before the `/api/v2.0`
/// scope, which would otherwise claim the document's path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/devcenter",
        web::get().to(|| async {
            HttpResponse::Found()
                .insert_header(("Location", "/devcenter/"))
                .finish()
        }),
    )
    .service(SwaggerUi::new("/devcenter/{_:.*}").url(DOCUMENT_PATH, document()));
}

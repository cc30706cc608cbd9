//! The HTTP endpoints of the issuer: the Docker token endpoint and the
//! console's login and logout. Thin: parse, call the domain, shape the reply.

mod console;
mod token;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/service/token")
            .route(web::get().to(token::get))
            .route(web::post().to(token::post)),
    )
    .service(web::resource("/c/login").route(web::post().to(console::login)))
    .service(
        web::resource("/c/log_out")
            .route(web::get().to(console::log_out))
            .route(web::post().to(console::log_out)),
    );
}

//! The console's static assets (`web/static`), compiled into the binary so
//! the console works on an offline network and needs no files next to the
//! executable. Each is served at `/static/<name>`; pages link to it with a
//! `?v=<hash>` of its content, so a browser may cache it for a year and
//! still never runs a stale script after an upgrade.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::Digest as _;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "wharf.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../web/static/wharf.css"),
    },
    Asset {
        name: "wharf.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../web/static/wharf.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../web/static/favicon.svg"),
    },
];

/// Content hashes, computed once: the `v` of every asset link and the ETag.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| hex::encode(&sha2::Sha256::digest(a.body)[..6]))
            .collect()
    })
}

/// The URL pages use for the asset `name` (`/static/wharf.css?v=…`).
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => format!("/static/{name}?v={}", hashes()[i]),
        None => format!("/static/{name}"),
    }
}

/// `GET /static/{name}`.
pub(crate) async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(i) = ASSETS.iter().position(|a| a.name == name.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset");
    };
    let asset = &ASSETS[i];
    let etag = format!("\"{}\"", hashes()[i]);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        return resp.finish();
    }
    resp.content_type(asset.content_type).body(asset.body)
}

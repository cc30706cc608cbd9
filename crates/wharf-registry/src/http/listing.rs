//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: byte-ordered, paginated
//! with `n`/`last` and an RFC 8288 `Link: <…>; rel="next"` when more remain.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use wharf_oci::{DistributionError, ErrorCode, RepositoryName};

use super::query_param;
use crate::Inner;
use crate::db;
use crate::error::{RegistryError, Result};

/// Upper bound on one page, whatever `n` asks for; a client asking for more
/// gets this many and a `Link` to the rest.
const MAX_PAGE: i64 = 10_000;

struct Page {
    n: Option<i64>,
    last: Option<String>,
}

fn page(req: &HttpRequest) -> Result<Page> {
    let n = match query_param(req, "n") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            RegistryError::Distribution(
                DistributionError::new(ErrorCode::Unsupported, "n must be a non-negative integer")
                    .with_status(400),
            )
        })?),
    };
    Ok(Page {
        n,
        last: query_param(req, "last").filter(|l| !l.is_empty()),
    })
}

/// Fetch one page through `fetch(last, limit)`, and the `Link` for the next.
async fn paginate<F, Fut>(
    page: &Page,
    path: &str,
    fetch: F,
) -> Result<(Vec<String>, Option<String>)>
where
    F: FnOnce(Option<String>, i64) -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<Vec<String>>>,
{
    if page.n == Some(0) {
        return Ok((Vec::new(), None));
    }
    let limit = page.n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut items = fetch(page.last.clone(), limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let link = match (more, items.last()) {
        (true, Some(last)) => {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("n", &limit.to_string())
                .append_pair("last", last)
                .finish();
            Some(format!("<{path}?{query}>; rel=\"next\""))
        }
        _ => None,
    };
    Ok((items, link))
}

fn respond(body: serde_json::Value, link: Option<String>) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    if let Some(link) = link {
        resp.insert_header((header::LINK, link));
    }
    resp.json(body)
}

pub async fn tags(req: &HttpRequest, reg: &Inner, name: &RepositoryName) -> Result<HttpResponse> {
    let Some(repository_id) = db::repositories::find(&reg.pool, name).await? else {
        return Err(RegistryError::with_detail(
            ErrorCode::NameUnknown,
            "repository name not known to registry",
            serde_json::json!({ "name": name.as_str() }),
        ));
    };
    let page = page(req)?;
    let path = format!("/v2/{name}/tags/list");
    let (tags, link) = paginate(&page, &path, |last, limit| async move {
        db::tags::list(&reg.pool, repository_id, last.as_deref(), limit).await
    })
    .await?;
    Ok(respond(
        serde_json::json!({ "name": name.as_str(), "tags": tags }),
        link,
    ))
}

pub async fn catalog(req: &HttpRequest, reg: &Inner) -> Result<HttpResponse> {
    let page = page(req)?;
    let (repositories, link) = paginate(&page, "/v2/_catalog", |last, limit| async move {
        db::repositories::list(&reg.pool, last.as_deref(), limit).await
    })
    .await?;
    Ok(respond(
        serde_json::json!({ "repositories": repositories }),
        link,
    ))
}

//! Harbor's paging: `page` (from 1) and `page_size` (default 10, at most 100)
//! in the query; `X-Total-Count` and an RFC 8288 `Link` header with `prev`
//! and `next` on the answer.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::{Listing, Page};

const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// The paging parameters of a list request.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PageParams {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

impl PageParams {
    /// The page asked for; out-of-range values are a 400 saying so.
    pub fn page(self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(10);
        if page < 1 {
            return Err(ApiError::bad_request("page must be 1 or more"));
        }
        if !(1..=i64::from(Page::MAX_SIZE)).contains(&size) {
            return Err(ApiError::bad_request(format!(
                "page_size must be 1 to {}",
                Page::MAX_SIZE
            )));
        }
        Ok(Page {
            page: u32::try_from(page).unwrap_or(u32::MAX),
            page_size: size as u32,
        })
    }
}

/// A 200 answer with one page of `listing` as a JSON array (each item mapped
/// by `to_json`), `X-Total-Count`, and `Link` to the neighbouring pages of
/// the same request.
pub fn paginated<T, J: Serialize>(
    req: &HttpRequest,
    listing: Listing<T>,
    page: Page,
    to_json: impl Fn(T) -> J,
) -> HttpResponse {
    let total = listing.total;
    let items: Vec<J> = listing.items.into_iter().map(to_json).collect();
    let mut resp = HttpResponse::Ok();
    resp.insert_header((TOTAL_COUNT, total.to_string()));
    if let Some(link) = link_header(req, page, total) {
        resp.insert_header((actix_web::http::header::LINK, link));
    }
    resp.json(items)
}

fn link_header(req: &HttpRequest, page: Page, total: i64) -> Option<HeaderValue> {
    let size = i64::from(page.page_size.max(1));
    let current = i64::from(page.page.max(1));
    let last_page = (total + size - 1) / size;
    let mut links = Vec::new();
    let url = |p: i64| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                url::form_urlencoded::parse(req.query_string().as_bytes())
                    .filter(|(k, _)| k != "page" && k != "page_size"),
            )
            .append_pair("page", &p.to_string())
            .append_pair("page_size", &size.to_string())
            .finish();
        format!("<{}?{}>", req.path(), query)
    };
    if current > 1 && current <= last_page + 1 {
        links.push(format!("{}; rel=\"prev\"", url(current - 1)));
    }
    if current < last_page {
        links.push(format!("{}; rel=\"next\"", url(current + 1)));
    }
    if links.is_empty() {
        return None;
    }
    HeaderValue::from_str(&links.join(" , ")).ok()
}

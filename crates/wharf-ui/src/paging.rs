//! Server-side paging for every list: `page` and `page_size` in the query
//! (the REST API's names and bounds), and the links of the pager partial,
//! which keep the list's other parameters (search, sort, filters).

use serde::Deserialize;
use wharf_projects::Page;

/// Rows per page when the link does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 15;

/// The page sizes the pager offers.
pub const PAGE_SIZES: [u32; 4] = [15, 25, 50, 100];

/// `page` and `page_size` of a list's query. Bad values fall back to the
/// defaults rather than failing: they come from hand-edited links.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
}

impl PageQuery {
    /// The page asked for, clamped to what the services serve.
    pub fn page(&self) -> Page {
        self.page_with(DEFAULT_PAGE_SIZE)
    }

    /// As [`PageQuery::page`], with another default size.
    pub fn page_with(&self, default_size: u32) -> Page {
        let page = self
            .page
            .as_deref()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|&p| p >= 1)
            .unwrap_or(1);
        let page_size = self
            .page_size
            .as_deref()
            .and_then(|p| p.parse::<u32>().ok())
            .map_or(default_size, |s| s.clamp(1, Page::MAX_SIZE));
        Page { page, page_size }
    }
}

/// What the pager partial draws under a list.
#[derive(Debug, Clone)]
pub struct Pager {
    pub page: u32,
    pub pages: u32,
    pub total: i64,
    /// 1-based index of the first and last row shown (0 when empty).
    pub first: i64,
    pub last: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The current size, and links to the other sizes.
    pub page_size: u32,
    pub sizes: Vec<(u32, String)>,
}

impl Pager {
    /// The pager of `page` out of `total` rows, for the list at `path` whose
    /// other query parameters are `params`.
    pub fn new(path: &str, params: &[(&str, String)], page: Page, total: i64) -> Pager {
        let size = i64::from(page.page_size.max(1));
        let pages = u32::try_from(((total + size - 1) / size).max(1)).unwrap_or(u32::MAX);
        let current = i64::from(page.page);
        let link = |p: u32, s: u32| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
                query.append_pair(k, v);
            }
            if p > 1 {
                query.append_pair("page", &p.to_string());
            }
            if s != DEFAULT_PAGE_SIZE {
                query.append_pair("page_size", &s.to_string());
            }
            let query = query.finish();
            if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            }
        };
        let shown = (total - (current - 1) * size).clamp(0, size);
        Pager {
            page: page.page,
            pages,
            total,
            first: if shown > 0 {
                (current - 1) * size + 1
            } else {
                0
            },
            last: if shown > 0 {
                (current - 1) * size + shown
            } else {
                0
            },
            prev: (page.page > 1).then(|| link(page.page.min(pages + 1) - 1, page.page_size)),
            next: (page.page < pages).then(|| link(page.page + 1, page.page_size)),
            page_size: page.page_size,
            sizes: PAGE_SIZES.iter().map(|&s| (s, link(1, s))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_other_parameters() {
        let pager = Pager::new(
            "/projects",
            &[("q", "team".into()), ("sort", String::new())],
            Page {
                page: 2,
                page_size: 15,
            },
            40,
        );
        assert_eq!(pager.pages, 3);
        assert_eq!((pager.first, pager.last), (16, 30));
        assert_eq!(pager.prev.as_deref(), Some("/projects?q=team"));
        assert_eq!(pager.next.as_deref(), Some("/projects?q=team&page=3"));
        assert_eq!(pager.sizes[1].1, "/projects?q=team&page_size=25");
    }

    #[test]
    fn an_empty_list_has_one_page_and_no_links() {
        let pager = Pager::new("/x", &[], Page::default(), 0);
        assert_eq!((pager.pages, pager.first, pager.last), (1, 0, 0));
        assert!(pager.prev.is_none() && pager.next.is_none());
    }

    #[test]
    fn bad_paging_values_fall_back_to_defaults() {
        let q = PageQuery {
            page: Some("zero".into()),
            page_size: Some("1000".into()),
        };
        assert_eq!(
            q.page(),
            Page {
                page: 1,
                page_size: 100
            }
        );
    }
}

//! Harbor's `q` query language: comma-separated `key<op>value` terms where
//! the value is exact (`k=v`), fuzzy (`k=~v`), a range (`k=[min~max]`, either
//! end may be empty), a union (`k={v1 v2}`) or an intersection
//! (`k=(v1 v2)`). Each endpoint says which keys it supports; any other key
//! is a 400, so a typo never silently returns everything.

use super::error::{ApiError, ApiResult};
use crate::users::TextMatch;

/// How a term matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Exact(String),
    Fuzzy(String),
    Range(Option<String>, Option<String>),
    Union(Vec<String>),
    Intersection(Vec<String>),
}

impl Matcher {
    /// The value of an exact or fuzzy term (the text to match either way).
    pub fn text(&self) -> Option<&str> {
        match self {
            Matcher::Exact(v) | Matcher::Fuzzy(v) => Some(v),
            _ => None,
        }
    }
}

/// A parsed `q`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<(String, Matcher)>,
}

impl Query {
    /// Parse `q`, accepting only `allowed` keys (compared case-insensitively,
    /// returned as written in `allowed`).
    pub fn parse(q: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
            return Ok(Query::default());
        };
        let mut terms = Vec::new();
        for raw in split_terms(q) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let Some((key, value)) = raw.split_once('=') else {
                return Err(ApiError::bad_request(format!(
                    "query term {raw:?} is not of the form key=value"
                )));
            };
            let key = key.trim();
            let Some(&known) = allowed.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
                return Err(ApiError::bad_request(format!(
                    "query key {key:?} is not supported here (supported: {})",
                    allowed.join(", ")
                )));
            };
            terms.push((known.to_owned(), parse_value(value.trim())?));
        }
        Ok(Query { terms })
    }

    /// The matcher for `key`, if the query has one.
    pub fn get(&self, key: &str) -> Option<&Matcher> {
        self.terms.iter().find(|(k, _)| k == key).map(|(_, m)| m)
    }
}

/// Split on commas that are not inside `[...]`, `{...}` or `(...)`.
fn split_terms(q: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in q.char_indices() {
        match c {
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&q[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&q[start..]);
    parts
}

fn parse_value(value: &str) -> Result<Matcher, ApiError> {
    if let Some(fuzzy) = value.strip_prefix('~') {
        return Ok(Matcher::Fuzzy(fuzzy.to_owned()));
    }
    let list = |inner: &str| -> Vec<String> {
        inner
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let Some((min, max)) = inner.split_once('~') else {
            return Err(ApiError::bad_request(format!(
                "range {value:?} must be [min~max]"
            )));
        };
        let end = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        return Ok(Matcher::Range(end(min), end(max)));
    }
    if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
        return Ok(Matcher::Union(list(inner)));
    }
    if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        return Ok(Matcher::Intersection(list(inner)));
    }
    Ok(Matcher::Exact(value.to_owned()))
}

/// Parse Harbor's `sort` (`name,-creation_time`) with the keys an endpoint
/// supports; an unknown key is a 400.
pub(super) fn parse_sort<K: Copy>(
    sort: Option<&str>,
    keys: &[(&str, K)],
) -> ApiResult<Vec<(K, bool)>> {
    let Some(sort) = sort.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    sort.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|term| {
            let (name, desc) = match term.strip_prefix('-') {
                Some(name) => (name, true),
                None => (term, false),
            };
            keys.iter()
                .find(|(k, _)| *k == name)
                .map(|&(_, key)| (key, desc))
                .ok_or_else(|| {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    ApiError::bad_request(format!(
                        "cannot sort by {name:?} (supported: {})",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// An exact or fuzzy `q` term as a text filter; other forms are a 400.
pub(super) fn text_filter(query: &Query, key: &str) -> ApiResult<Option<TextMatch>> {
    match query.get(key) {
        None => Ok(None),
        Some(Matcher::Exact(v)) => Ok(Some(TextMatch::Exact(v.clone()))),
        Some(Matcher::Fuzzy(v)) => Ok(Some(TextMatch::Contains(v.clone()))),
        Some(_) => Err(ApiError::bad_request(format!(
            "query key {key} supports only exact (k=v) or fuzzy (k=~v) matching"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let q = Query::parse(
            Some("name=~app,public=true,op_time=[2024-01-01 00:00:00~],id={1 2 3},tags=(a b)"),
            &["name", "public", "op_time", "id", "tags"],
        )
        .unwrap();
        assert_eq!(q.get("name"), Some(&Matcher::Fuzzy("app".into())));
        assert_eq!(q.get("public"), Some(&Matcher::Exact("true".into())));
        assert_eq!(
            q.get("op_time"),
            Some(&Matcher::Range(Some("2024-01-01 00:00:00".into()), None))
        );
        assert_eq!(
            q.get("id"),
            Some(&Matcher::Union(vec!["1".into(), "2".into(), "3".into()]))
        );
        assert_eq!(
            q.get("tags"),
            Some(&Matcher::Intersection(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn unknown_keys_and_malformed_terms_are_errors() {
        assert!(Query::parse(Some("nmae=x"), &["name"]).is_err());
        assert!(Query::parse(Some("name"), &["name"]).is_err());
        assert!(Query::parse(Some("t=[1,2]"), &["t"]).is_err());
        assert_eq!(Query::parse(Some(""), &[]).unwrap(), Query::default());
        assert_eq!(
            Query::parse(Some("Name=x"), &["name"]).unwrap().get("name"),
            Some(&Matcher::Exact("x".into()))
        );
    }
}

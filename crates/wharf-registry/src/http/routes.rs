//! Parsing `/v2/...` paths. Repository names span several path segments, so the
//! route is recognised from the right: the last one to three segments say what
//! is addressed, everything before them is the name.

use uuid::Uuid;
use wharf_oci::{Digest, ErrorCode, Reference, RepositoryName};

use super::parse_digest;
use crate::error::RegistryError;

/// What a `/v2/` path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags(RepositoryName),
    Manifest(RepositoryName, Reference),
    Blob(RepositoryName, Digest),
    UploadStart(RepositoryName),
    Upload(RepositoryName, Uuid),
    Referrers(RepositoryName, Digest),
}

impl Route {
    /// Parse the raw (still percent-encoded) path after `/v2/`. `Ok(None)` means
    /// the path is not a registry endpoint at all (404).
    pub fn parse(rest: &str) -> Result<Option<Route>, RegistryError> {
        if rest.is_empty() {
            return Ok(Some(Route::Base));
        }
        if rest == "_catalog" {
            return Ok(Some(Route::Catalog));
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name = |upto: usize| -> Result<RepositoryName, RegistryError> {
            if upto == 0 {
                return Err(RegistryError::code(
                    ErrorCode::NameInvalid,
                    "repository name is empty",
                ));
            }
            RepositoryName::parse(&segments[..upto].join("/")).map_err(|e| {
                RegistryError::with_detail(
                    ErrorCode::NameInvalid,
                    "invalid repository name",
                    serde_json::json!({ "reason": e.to_string() }),
                )
            })
        };
        if n >= 4 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let repo = name(n - 3)?;
            if segments[n - 1].is_empty() {
                return Ok(Some(Route::UploadStart(repo)));
            }
            let id = Uuid::parse_str(segments[n - 1]).map_err(|_| {
                RegistryError::code(
                    ErrorCode::BlobUploadUnknown,
                    "blob upload unknown to registry",
                )
            })?;
            return Ok(Some(Route::Upload(repo, id)));
        }
        if n >= 3 && segments[n - 2] == "blobs" && segments[n - 1] == "uploads" {
            return Ok(Some(Route::UploadStart(name(n - 2)?)));
        }
        if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
            return Ok(Some(Route::Tags(name(n - 2)?)));
        }
        if n >= 3 && segments[n - 2] == "manifests" {
            let repo = name(n - 2)?;
            let reference = Reference::parse(segments[n - 1]).map_err(|e| {
                let code = if segments[n - 1].contains(':') {
                    ErrorCode::DigestInvalid
                } else {
                    ErrorCode::ManifestInvalid
                };
                RegistryError::with_detail(
                    code,
                    "invalid manifest reference",
                    serde_json::json!({ "reference": segments[n - 1], "reason": e.to_string() }),
                )
            })?;
            return Ok(Some(Route::Manifest(repo, reference)));
        }
        if n >= 3 && segments[n - 2] == "blobs" {
            let repo = name(n - 2)?;
            return Ok(Some(Route::Blob(repo, parse_digest(segments[n - 1])?)));
        }
        if n >= 3 && segments[n - 2] == "referrers" {
            let repo = name(n - 2)?;
            return Ok(Some(Route::Referrers(repo, parse_digest(segments[n - 1])?)));
        }
        Ok(None)
    }
}

/// The templates [`template`] answers, one per [`Route`] variant.
pub(crate) mod templates {
    pub const BASE: &str = "/v2/";
    pub const CATALOG: &str = "/v2/_catalog";
    pub const TAGS: &str = "/v2/{name}/tags/list";
    pub const MANIFEST: &str = "/v2/{name}/manifests/{reference}";
    pub const BLOB: &str = "/v2/{name}/blobs/{digest}";
    pub const UPLOAD_START: &str = "/v2/{name}/blobs/uploads/";
    pub const UPLOAD: &str = "/v2/{name}/blobs/uploads/{id}";
    pub const REFERRERS: &str = "/v2/{name}/referrers/{digest}";
}

/// The route template of the raw path after `/v2/`, by the same shape rules
/// as [`Route::parse`] but without validating the name, digest or reference
/// and without allocating: what metrics label a request with, so that a
/// request that fails validation still counts under its endpoint. `None`
/// when the path is no registry endpoint (where `parse` gives `Ok(None)`).
pub fn template(rest: &str) -> Option<&'static str> {
    if rest.is_empty() {
        return Some(templates::BASE);
    }
    if rest == "_catalog" {
        return Some(templates::CATALOG);
    }
    // Segments from the right: `last` is segments[n - 1], and so on;
    // `longer` says whether there is a fourth one (n >= 4).
    let mut from_right = rest.rsplit('/');
    let last = from_right.next().unwrap_or_default();
    let (Some(second), Some(third)) = (from_right.next(), from_right.next()) else {
        return None;
    };
    let longer = from_right.next().is_some();
    Some(match (third, second, last) {
        ("blobs", "uploads", "") if longer => templates::UPLOAD_START,
        ("blobs", "uploads", _) if longer => templates::UPLOAD,
        (_, "blobs", "uploads") => templates::UPLOAD_START,
        (_, "tags", "list") => templates::TAGS,
        (_, "manifests", _) => templates::MANIFEST,
        (_, "blobs", _) => templates::BLOB,
        (_, "referrers", _) => templates::REFERRERS,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn route(p: &str) -> Route {
        Route::parse(p).unwrap().unwrap()
    }

    #[test]
    fn recognises_every_endpoint() {
        assert_eq!(route(""), Route::Base);
        assert_eq!(route("_catalog"), Route::Catalog);
        let n = RepositoryName::parse("library/app").unwrap();
        assert_eq!(route("library/app/tags/list"), Route::Tags(n.clone()));
        assert!(matches!(
            route("library/app/manifests/v1"),
            Route::Manifest(_, Reference::Tag(_))
        ));
        assert!(matches!(
            route(&format!("library/app/manifests/{D}")),
            Route::Manifest(_, Reference::Digest(_))
        ));
        assert!(matches!(
            route(&format!("library/app/blobs/{D}")),
            Route::Blob(..)
        ));
        assert_eq!(
            route("library/app/blobs/uploads/"),
            Route::UploadStart(n.clone())
        );
        assert!(matches!(
            route("library/app/blobs/uploads/9a0b39c6-4cd8-4d0e-9a3a-7a5c3f3d7a10"),
            Route::Upload(..)
        ));
        assert!(matches!(
            route(&format!("library/app/referrers/{D}")),
            Route::Referrers(..)
        ));
    }

    #[test]
    fn names_may_contain_route_words() {
        let r = route(&format!("a/blobs/manifests/blobs/{D}"));
        assert_eq!(
            r,
            Route::Blob(
                RepositoryName::parse("a/blobs/manifests").unwrap(),
                Digest::parse(D).unwrap()
            )
        );
        assert!(
            matches!(route("tags/list/tags/list"), Route::Tags(n) if n.as_str() == "tags/list")
        );
    }

    #[test]
    fn hostile_names_are_name_invalid() {
        for p in [
            "../etc/manifests/v1",
            "Library/app/manifests/v1",
            "library%2Fapp/manifests/v1",
            "library//app/manifests/v1",
            "/manifests/v1",
        ] {
            match Route::parse(p) {
                Err(RegistryError::Distribution(e)) => {
                    assert_eq!(e.code, ErrorCode::NameInvalid, "{p}")
                }
                other => panic!("{p}: {other:?}"),
            }
        }
        let long = format!("{}/manifests/v1", "a".repeat(300));
        assert!(
            matches!(Route::parse(&long), Err(RegistryError::Distribution(e)) if e.code == ErrorCode::NameInvalid)
        );
    }

    /// Which template each variant must have.
    fn template_of(route: &Route) -> &'static str {
        match route {
            Route::Base => templates::BASE,
            Route::Catalog => templates::CATALOG,
            Route::Tags(_) => templates::TAGS,
            Route::Manifest(..) => templates::MANIFEST,
            Route::Blob(..) => templates::BLOB,
            Route::UploadStart(_) => templates::UPLOAD_START,
            Route::Upload(..) => templates::UPLOAD,
            Route::Referrers(..) => templates::REFERRERS,
        }
    }

    #[test]
    fn templates_agree_with_the_parser() {
        let paths = [
            "".to_owned(),
            "_catalog".to_owned(),
            "library/app/tags/list".to_owned(),
            "library/app/manifests/v1".to_owned(),
            format!("library/app/manifests/{D}"),
            format!("library/app/blobs/{D}"),
            "library/app/blobs/uploads/".to_owned(),
            "library/app/blobs/uploads".to_owned(),
            "library/app/blobs/uploads/9a0b39c6-4cd8-4d0e-9a3a-7a5c3f3d7a10".to_owned(),
            format!("library/app/referrers/{D}"),
            format!("a/blobs/manifests/blobs/{D}"),
            "tags/list/tags/list".to_owned(),
            "a/blobs/uploads/tags/list".to_owned(),
            "a/manifests/blobs/uploads/".to_owned(),
            "library/app/nothing".to_owned(),
            "app/manifests".to_owned(),
            "x".to_owned(),
            "a/b/c/d/e".to_owned(),
        ];
        for p in &paths {
            let parsed = Route::parse(p).unwrap();
            assert_eq!(template(p), parsed.as_ref().map(template_of), "{p:?}");
        }
    }

    #[test]
    fn invalid_requests_still_have_their_endpoints_template() {
        assert_eq!(template("Bad Name/manifests/v1"), Some(templates::MANIFEST));
        assert_eq!(
            template("library/app/blobs/sha256:xyz"),
            Some(templates::BLOB)
        );
        assert_eq!(
            template("library/app/blobs/uploads/not-a-uuid"),
            Some(templates::UPLOAD)
        );
        assert_eq!(template("/manifests/v1"), Some(templates::MANIFEST));
    }

    #[test]
    fn bad_digests_are_digest_invalid() {
        match Route::parse("library/app/blobs/sha256:xyz") {
            Err(RegistryError::Distribution(e)) => assert_eq!(e.code, ErrorCode::DigestInvalid),
            other => panic!("{other:?}"),
        }
        assert!(Route::parse("library/app/nothing").unwrap().is_none());
    }
}

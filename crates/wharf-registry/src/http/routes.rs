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

    #[test]
    fn bad_digests_are_digest_invalid() {
        match Route::parse("library/app/blobs/sha256:xyz") {
            Err(RegistryError::Distribution(e)) => assert_eq!(e.code, ErrorCode::DigestInvalid),
            other => panic!("{other:?}"),
        }
        assert!(Route::parse("library/app/nothing").unwrap().is_none());
    }
}

//! Media types Wharf understands.
//!
//! Manifests are stored only for the four "schema 2" types: OCI image manifest,
//! OCI image index, Docker manifest and Docker manifest list. Docker schema 1 is
//! recognised only so it can be refused with a clear error.

/// OCI image manifest (also used for OCI artifacts).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration blob.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed layer.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed layer.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration blob.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip-compressed layer.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) layer; normally carries `urls`.
pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 manifest (unsigned). Not supported.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 manifest (signed, JWS). Not supported.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// True for single-image manifest types (OCI image manifest, Docker schema 2 manifest).
pub fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

/// True for index types (OCI image index, Docker manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// True for every manifest media type Wharf stores: a manifest or an index type.
pub fn is_supported_manifest_media_type(media_type: &str) -> bool {
    is_manifest_media_type(media_type) || is_index_media_type(media_type)
}

/// True for the Docker schema 1 types, which Wharf refuses.
pub fn is_docker_schema1_media_type(media_type: &str) -> bool {
    matches!(media_type, DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED)
}

/// The media type of a `Content-Type` header value without parameters or surrounding
/// whitespace: `"application/json; charset=utf-8"` → `"application/json"`.
pub fn essence(content_type: &str) -> &str {
    content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence)
        .trim()
}

/// Whether `s` is syntactically a media type per RFC 6838 (`type/subtype`, each a
/// restricted name of 1–127 characters starting with a letter or digit), with no
/// parameters.
pub fn is_valid_media_type(s: &str) -> bool {
    fn restricted_name(part: &str) -> bool {
        let mut bytes = part.bytes();
        let Some(first) = bytes.next() else {
            return false;
        };
        part.len() <= 127
            && first.is_ascii_alphanumeric()
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    }
    s.split_once('/')
        .is_some_and(|(ty, subtype)| restricted_name(ty) && restricted_name(subtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_manifest_types() {
        assert!(is_manifest_media_type(OCI_MANIFEST));
        assert!(is_manifest_media_type(DOCKER_MANIFEST));
        assert!(!is_manifest_media_type(OCI_INDEX));
        assert!(is_index_media_type(OCI_INDEX));
        assert!(is_index_media_type(DOCKER_MANIFEST_LIST));
        assert!(!is_index_media_type(DOCKER_MANIFEST));
        assert!(!is_supported_manifest_media_type(DOCKER_MANIFEST_V1));
        assert!(!is_supported_manifest_media_type(OCI_CONFIG));
        assert!(is_docker_schema1_media_type(DOCKER_MANIFEST_V1_SIGNED));
    }

    #[test]
    fn essence_strips_parameters() {
        assert_eq!(
            essence("application/json; charset=utf-8"),
            "application/json"
        );
        assert_eq!(essence(" application/json "), "application/json");
        assert_eq!(essence(OCI_MANIFEST), OCI_MANIFEST);
        assert_eq!(essence(""), "");
    }

    #[test]
    fn media_type_syntax() {
        for ok in [
            OCI_MANIFEST,
            OCI_EMPTY,
            "application/vnd.example+type",
            "text/plain",
        ] {
            assert!(is_valid_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "application",
            "application/",
            "/json",
            "a/b/c",
            "text/plain; x=y",
            "a b/c",
            "-a/b",
        ] {
            assert!(!is_valid_media_type(bad), "{bad}");
        }
    }
}

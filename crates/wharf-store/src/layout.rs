//! Where things live, relative to the storage root (a directory or a bucket
//! prefix). One function per kind of key so both backends agree on the layout:
//!
//! ```text
//! blobs/<alg>/<hex[0..2]>/<hex>      verified, durable blobs (content-addressed)
//! uploads/<uuid>/data                upload bytes (filesystem) or the completed
//!                                    multipart object (object stores)
//! uploads/<uuid>/tail-<offset>       object stores: bytes not yet in a part
//! ```

use uuid::Uuid;
use wharf_oci::Digest;

/// Top-level directory of verified blobs.
pub(crate) const BLOBS: &str = "blobs";
/// Top-level directory of in-progress uploads; everything under it may be purged.
pub(crate) const UPLOADS: &str = "uploads";

/// Segments of a blob's key: `blobs`, algorithm, first two hex characters, hex.
pub(crate) fn blob_segments(digest: &Digest) -> [String; 4] {
    let hex = digest.hex();
    [
        BLOBS.to_owned(),
        digest.algorithm().as_str().to_owned(),
        hex[..2].to_owned(),
        hex.to_owned(),
    ]
}

/// Segments of an upload's directory (`uploads/<uuid>`).
pub(crate) fn upload_segments(id: Uuid) -> [String; 2] {
    [UPLOADS.to_owned(), id.to_string()]
}

/// Name of the file/object holding an upload's bytes, inside its directory.
pub(crate) const UPLOAD_DATA: &str = "data";

/// Name of the object holding an upload's tail that ends at `offset`.
///
/// The end offset is part of the name so a stale [`crate::UploadState`] can never
/// read a tail written for a later state: it finds no object and fails cleanly
/// instead of hashing one sequence of bytes while storing another.
pub(crate) fn tail_name(offset: u64) -> String {
    format!("tail-{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_oci::DigestAlgorithm;

    #[test]
    fn blob_key_is_sharded_by_first_two_hex_characters() {
        let d = Digest::of(DigestAlgorithm::Sha256, b"abc");
        let segs = blob_segments(&d);
        assert_eq!(segs[0], "blobs");
        assert_eq!(segs[1], "sha256");
        assert_eq!(segs[2], "ba");
        assert_eq!(
            segs[3],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d512 = Digest::of(DigestAlgorithm::Sha512, b"abc");
        assert_eq!(blob_segments(&d512)[1], "sha512");
    }

    #[test]
    fn tails_are_named_by_end_offset() {
        assert_eq!(tail_name(0), "tail-0");
        assert_eq!(tail_name(12_345), "tail-12345");
    }
}

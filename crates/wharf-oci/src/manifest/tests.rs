use serde_json::{Value, json};

use super::*;
use crate::media_types::*;
use crate::{DigestAlgorithm, ErrorCode};

fn d256(seed: &str) -> String {
    Digest::of(DigestAlgorithm::Sha256, seed.as_bytes()).to_string()
}

fn d512(seed: &str) -> String {
    Digest::of(DigestAlgorithm::Sha512, seed.as_bytes()).to_string()
}

/// Digest and size of the OCI empty descriptor's content, `{}`.
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn desc(media_type: &str, seed: &str, size: u64) -> Value {
    json!({"mediaType": media_type, "digest": d256(seed), "size": size})
}

fn empty_desc() -> Value {
    json!({"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2})
}

fn oci_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, "config", 100),
        "layers": [desc(OCI_LAYER_TAR_GZIP, "l1", 1000), desc(OCI_LAYER_TAR_ZSTD, "l2", 2000)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    })
}

fn docker_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, "dconfig", 1500),
        "layers": [
            desc(DOCKER_LAYER_TAR_GZIP, "dl1", 30000),
            {
                "mediaType": DOCKER_FOREIGN_LAYER_TAR_GZIP,
                "digest": d256("foreign"),
                "size": 99999,
                "urls": ["https://example.com/layer.tar.gz"]
            }
        ]
    })
}

fn docker_list() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": d256("amd64"), "size": 528,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": d256("arm64"), "size": 528,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
        ]
    })
}

fn oci_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d256("m1"), "size": 700,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_INDEX, "digest": d256("nested"), "size": 300},
            {"mediaType": OCI_MANIFEST, "digest": d256("sig"), "size": 400,
             "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}
        ],
        "annotations": {"a": "b"}
    })
}

fn oci_artifact() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": empty_desc(),
        "layers": [desc("application/spdx+json", "sbom", 5000)],
        "subject": desc(OCI_MANIFEST, "m1", 700),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn parse(content_type: Option<&str>, v: &Value) -> Result<ParsedManifest, ManifestError> {
    ParsedManifest::parse(content_type, &bytes(v))
}

#[track_caller]
fn assert_invalid(content_type: Option<&str>, v: &Value, needle: &str) {
    match parse(content_type, v) {
        Err(ManifestError::Invalid(msg)) => {
            assert!(msg.contains(needle), "expected {needle:?} in {msg:?}")
        }
        other => panic!("expected Invalid containing {needle:?}, got {other:?}"),
    }
}

// ---- valid manifests of each type ----

#[test]
fn oci_image_manifest() {
    let m = parse(Some(OCI_MANIFEST), &oci_manifest()).unwrap();
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert!(!m.is_index());
    assert_eq!(m.config.as_ref().unwrap().media_type, OCI_CONFIG);
    assert_eq!(m.layers.len(), 2);
    assert_eq!(m.layers[1].size, 2000);
    assert!(m.manifests.is_empty());
    assert_eq!(m.subject, None);
    assert_eq!(m.annotations.len(), 1);
    assert_eq!(m.artifact_type, None);
    assert_eq!(m.referrer_artifact_type().as_deref(), Some(OCI_CONFIG));
    let blobs: Vec<_> = m.blob_references().map(|d| d.digest.to_string()).collect();
    assert_eq!(blobs, [d256("config"), d256("l1"), d256("l2")]);
}

#[test]
fn docker_schema2_manifest_skips_foreign_layers() {
    let m = parse(Some(DOCKER_MANIFEST), &docker_manifest()).unwrap();
    assert_eq!(m.media_type, DOCKER_MANIFEST);
    assert!(!m.is_index());
    assert_eq!(m.layers.len(), 2);
    assert!(m.layers[1].is_foreign());
    let blobs: Vec<_> = m.blob_references().map(|d| d.digest.to_string()).collect();
    assert_eq!(blobs, [d256("dconfig"), d256("dl1")]);
    assert_eq!(m.referrer_artifact_type().as_deref(), Some(DOCKER_CONFIG));
}

#[test]
fn empty_urls_is_not_foreign() {
    let mut v = docker_manifest();
    v["layers"][1]["urls"] = json!([]);
    let m = parse(None, &v).unwrap();
    assert_eq!(m.blob_references().count(), 3);
}

#[test]
fn docker_manifest_list() {
    let m = parse(Some(DOCKER_MANIFEST_LIST), &docker_list()).unwrap();
    assert!(m.is_index());
    assert_eq!(m.manifests.len(), 2);
    assert_eq!(m.manifests[1].platform.as_ref().unwrap()["variant"], "v8");
    assert_eq!(m.config, None);
    assert_eq!(m.blob_references().count(), 0);
    assert_eq!(m.referrer_artifact_type(), None);
}

#[test]
fn oci_image_index() {
    let m = parse(Some(OCI_INDEX), &oci_index()).unwrap();
    assert!(m.is_index());
    assert_eq!(m.media_type, OCI_INDEX);
    assert_eq!(m.manifests.len(), 3);
    assert_eq!(
        m.manifests[2].artifact_type.as_deref(),
        Some("application/vnd.dev.cosign.artifact.sig.v1+json")
    );
    assert_eq!(m.annotations["a"], "b");
    assert_eq!(m.referrer_artifact_type(), None);
}

#[test]
fn oci_index_with_artifact_type_and_subject() {
    let mut v = oci_index();
    v["artifactType"] = json!("application/vnd.example.bundle");
    v["subject"] = desc(OCI_MANIFEST, "target", 10);
    let m = parse(Some(OCI_INDEX), &v).unwrap();
    assert_eq!(
        m.referrer_artifact_type().as_deref(),
        Some("application/vnd.example.bundle")
    );
    assert_eq!(m.subject.unwrap().digest.to_string(), d256("target"));
}

#[test]
fn oci_artifact_with_empty_config_and_subject() {
    let m = parse(Some(OCI_MANIFEST), &oci_artifact()).unwrap();
    assert_eq!(
        m.artifact_type.as_deref(),
        Some("application/vnd.example.sbom.v1")
    );
    assert_eq!(
        m.referrer_artifact_type().as_deref(),
        Some("application/vnd.example.sbom.v1")
    );
    assert_eq!(m.config.as_ref().unwrap().media_type, OCI_EMPTY);
    assert_eq!(m.subject.as_ref().unwrap().digest.to_string(), d256("m1"));
    // The empty config is a blob like any other.
    let blobs: Vec<_> = m.blob_references().map(|d| d.digest.to_string()).collect();
    assert_eq!(blobs, [EMPTY_DIGEST.to_owned(), d256("sbom")]);
}

#[test]
fn artifact_with_no_layers_or_empty_layer() {
    let mut v = oci_artifact();
    v["layers"] = json!([]);
    let m = parse(Some(OCI_MANIFEST), &v).unwrap();
    assert!(m.layers.is_empty());
    assert_eq!(m.blob_references().count(), 1);

    // The empty descriptor as both config and only layer is referenced once.
    v["layers"] = json!([empty_desc()]);
    let m = parse(Some(OCI_MANIFEST), &v).unwrap();
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.blob_references().count(), 1);

    // Go's image-spec types write a nil layer slice as null.
    v["layers"] = Value::Null;
    assert!(parse(Some(OCI_MANIFEST), &v).unwrap().layers.is_empty());
}

#[test]
fn artifact_without_artifact_type_reports_config_media_type() {
    let mut v = oci_artifact();
    v.as_object_mut().unwrap().remove("artifactType");
    v["config"] = desc("application/vnd.example.config.v1+json", "cfg", 10);
    let m = parse(None, &v).unwrap();
    assert_eq!(
        m.referrer_artifact_type().as_deref(),
        Some("application/vnd.example.config.v1+json")
    );
}

#[test]
fn sha512_descriptors() {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": d512("c"), "size": 1},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": d512("l"), "size": 0}]
    });
    let m = parse(None, &v).unwrap();
    assert_eq!(m.layers[0].digest.algorithm(), DigestAlgorithm::Sha512);
    assert_eq!(m.layers[0].size, 0);
}

#[test]
fn descriptor_optional_fields_and_unknown_fields() {
    let mut v = oci_manifest();
    v["layers"][0]["annotations"] = json!({"org.opencontainers.image.title": "file.txt"});
    v["layers"][0]["data"] = json!("e30=");
    v["layers"][0]["somethingNew"] = json!({"x": 1});
    v["layers"][0]["urls"] = Value::Null;
    v["unknownTopLevel"] = json!(true);
    let m = parse(None, &v).unwrap();
    let layer = &m.layers[0];
    assert_eq!(
        layer.annotations.as_ref().unwrap()["org.opencontainers.image.title"],
        "file.txt"
    );
    assert_eq!(layer.urls, None);
}

#[test]
fn descriptor_serde_round_trip() {
    let m = parse(Some(OCI_INDEX), &oci_index()).unwrap();
    let json = serde_json::to_value(&m.manifests[2]).unwrap();
    assert_eq!(
        json["artifactType"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    assert!(json.get("urls").is_none());
    let back: Descriptor = serde_json::from_value(json).unwrap();
    assert_eq!(back, m.manifests[2]);
    let d = Descriptor::new(OCI_EMPTY, EMPTY_DIGEST.parse().unwrap(), 2);
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2})
    );
}

// ---- media type selection ----

#[test]
fn content_type_used_when_body_has_no_media_type() {
    let mut v = docker_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    let m = parse(Some(DOCKER_MANIFEST), &v).unwrap();
    assert_eq!(m.media_type, DOCKER_MANIFEST);

    let mut v = oci_index();
    v.as_object_mut().unwrap().remove("mediaType");
    let m = parse(Some(OCI_INDEX), &v).unwrap();
    assert_eq!(m.media_type, OCI_INDEX);
}

#[test]
fn content_type_parameters_are_ignored() {
    let m = parse(
        Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        &oci_manifest(),
    )
    .unwrap();
    assert_eq!(m.media_type, OCI_MANIFEST);
}

#[test]
fn generic_content_type_counts_as_absent() {
    for ct in [
        "application/json",
        "application/octet-stream",
        "",
        "application/json; charset=utf-8",
    ] {
        let m = parse(Some(ct), &oci_manifest()).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST, "{ct:?}");
    }
}

#[test]
fn media_type_inferred_without_body_or_header() {
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    assert_eq!(parse(None, &v).unwrap().media_type, OCI_MANIFEST);
    assert_eq!(
        parse(Some("application/json"), &v).unwrap().media_type,
        OCI_MANIFEST
    );

    let mut v = oci_index();
    v.as_object_mut().unwrap().remove("mediaType");
    assert_eq!(parse(None, &v).unwrap().media_type, OCI_INDEX);

    let mut ambiguous = oci_manifest();
    ambiguous.as_object_mut().unwrap().remove("mediaType");
    ambiguous["manifests"] = json!([]);
    assert_invalid(None, &ambiguous, "ambiguous");

    assert_invalid(None, &json!({"schemaVersion": 2}), "no mediaType");
}

#[test]
fn media_type_mismatch() {
    assert_eq!(
        parse(Some(OCI_INDEX), &oci_manifest()),
        Err(ManifestError::MediaTypeMismatch {
            body: OCI_MANIFEST.to_owned(),
            content_type: OCI_INDEX.to_owned(),
        })
    );
    assert!(matches!(
        parse(Some(OCI_MANIFEST), &docker_manifest()),
        Err(ManifestError::MediaTypeMismatch { .. })
    ));
}

#[test]
fn content_type_disagreeing_with_structure_is_invalid() {
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    assert_invalid(Some(OCI_INDEX), &v, "manifests is required");
}

#[test]
fn schema1_is_unsupported() {
    let schema1 = json!({
        "schemaVersion": 1,
        "name": "library/hello",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": d256("x")}],
        "history": []
    });
    for ct in [
        Some(DOCKER_MANIFEST_V1),
        Some(DOCKER_MANIFEST_V1_SIGNED),
        None,
    ] {
        assert!(
            matches!(
                parse(ct, &schema1),
                Err(ManifestError::UnsupportedMediaType(_))
            ),
            "{ct:?}"
        );
    }
    let mut with_media_type = schema1.clone();
    with_media_type["mediaType"] = json!(DOCKER_MANIFEST_V1_SIGNED);
    assert_eq!(
        parse(None, &with_media_type),
        Err(ManifestError::UnsupportedMediaType(
            DOCKER_MANIFEST_V1_SIGNED.to_owned()
        ))
    );
    // Refused as schema 1 even when the body claims schemaVersion 2.
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    assert!(matches!(
        parse(Some(DOCKER_MANIFEST_V1), &v),
        Err(ManifestError::UnsupportedMediaType(_))
    ));
}

#[test]
fn unknown_media_types_are_unsupported() {
    let mut v = oci_manifest();
    v["mediaType"] = json!("application/vnd.example.thing+json");
    assert_eq!(
        parse(None, &v),
        Err(ManifestError::UnsupportedMediaType(
            "application/vnd.example.thing+json".into()
        ))
    );
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    assert_eq!(
        parse(Some(OCI_CONFIG), &v),
        Err(ManifestError::UnsupportedMediaType(OCI_CONFIG.into()))
    );
    assert_invalid(
        None,
        &json!({"schemaVersion": 2, "mediaType": 7}),
        "mediaType must be a string",
    );
}

// ---- document-level failures ----

#[test]
fn not_json() {
    for body in [
        &b"{"[..],
        b"",
        b"not json",
        b"{\"schemaVersion\":2,}",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(
                ParsedManifest::parse(Some(OCI_MANIFEST), body),
                Err(ManifestError::NotJson(_))
            ),
            "{body:?}"
        );
    }
}

#[test]
fn not_an_object() {
    for v in [json!([]), json!("manifest"), json!(2), Value::Null] {
        assert_invalid(Some(OCI_MANIFEST), &v, "JSON object");
    }
}

#[test]
fn schema_version_must_be_2() {
    for bad in [
        json!(3),
        json!(0),
        json!("2"),
        json!(2.0),
        json!(-2),
        Value::Null,
    ] {
        let mut v = oci_manifest();
        v["schemaVersion"] = bad.clone();
        assert_invalid(None, &v, "schemaVersion must be 2");
    }
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("schemaVersion");
    assert_invalid(None, &v, "schemaVersion is required");
}

#[test]
fn oversize_manifest() {
    let body = vec![b' '; MAX_MANIFEST_SIZE + 1];
    assert_eq!(
        ParsedManifest::parse(Some(OCI_MANIFEST), &body),
        Err(ManifestError::TooLarge {
            size: MAX_MANIFEST_SIZE + 1,
            max: MAX_MANIFEST_SIZE
        })
    );
    let err = crate::DistributionError::from(ParsedManifest::parse(None, &body).unwrap_err());
    assert_eq!((err.code, err.status), (ErrorCode::SizeInvalid, 413));
}

#[test]
fn manifest_of_exactly_the_limit_is_accepted() {
    let mut v = oci_manifest();
    v["annotations"]["padding"] = json!("");
    let base = bytes(&v).len();
    v["annotations"]["padding"] = json!("x".repeat(MAX_MANIFEST_SIZE - base));
    let body = bytes(&v);
    assert_eq!(body.len(), MAX_MANIFEST_SIZE);
    assert!(ParsedManifest::parse(Some(OCI_MANIFEST), &body).is_ok());
}

// ---- image manifest structure ----

#[test]
fn missing_or_bad_config() {
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("config");
    assert_invalid(None, &v, "config is required");

    let mut v = docker_manifest();
    v.as_object_mut().unwrap().remove("config");
    assert_invalid(None, &v, "config is required");

    let mut v = oci_manifest();
    v["config"] = json!("sha256:abc");
    assert_invalid(None, &v, "config must be a descriptor object");

    let mut v = oci_manifest();
    v["config"].as_object_mut().unwrap().remove("digest");
    assert_invalid(None, &v, "config.digest is required");
}

#[test]
fn missing_or_bad_layers() {
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("layers");
    assert_invalid(None, &v, "layers is required");

    let mut v = oci_manifest();
    v["layers"] = json!({});
    assert_invalid(None, &v, "layers must be an array");

    let mut v = oci_manifest();
    v["layers"] = json!([d256("l1")]);
    assert_invalid(None, &v, "layers[0] must be a descriptor object");
}

#[test]
fn bad_digest_in_layer_names_the_field() {
    let bad = [
        json!("sha256:ABCDEF"),
        json!(d256("x").to_uppercase()),
        json!("md5:d41d8cd98f00b204e9800998ecf8427e"),
        json!("nope"),
        json!(42),
    ];
    for digest in bad {
        let mut v = oci_manifest();
        v["layers"][1]["digest"] = digest.clone();
        assert_invalid(None, &v, "layers[1].digest");
    }
}

#[test]
fn bad_sizes() {
    for size in [
        json!(-1),
        json!(1.5),
        json!("10"),
        json!(1e30),
        json!(u64::MAX),
        Value::Null,
    ] {
        let mut v = oci_manifest();
        v["layers"][0]["size"] = size.clone();
        assert_invalid(None, &v, "layers[0].size");
    }
    let mut v = oci_manifest();
    v["config"].as_object_mut().unwrap().remove("size");
    assert_invalid(None, &v, "config.size is required");
    // The largest int64 is fine.
    let mut v = oci_manifest();
    v["layers"][0]["size"] = json!(i64::MAX);
    assert_eq!(parse(None, &v).unwrap().layers[0].size, i64::MAX as u64);
}

#[test]
fn bad_descriptor_media_types() {
    let mut v = oci_manifest();
    v["layers"][0].as_object_mut().unwrap().remove("mediaType");
    assert_invalid(None, &v, "layers[0].mediaType is required");

    for bad in [
        json!(1),
        json!(""),
        json!("not a media type"),
        json!("text"),
    ] {
        let mut v = oci_manifest();
        v["config"]["mediaType"] = bad.clone();
        assert_invalid(None, &v, "config.mediaType");
    }
}

#[test]
fn bad_optional_descriptor_fields() {
    let mut v = oci_manifest();
    v["layers"][0]["urls"] = json!([1]);
    assert_invalid(None, &v, "layers[0].urls");

    let mut v = oci_manifest();
    v["layers"][0]["urls"] = json!("https://example.com");
    assert_invalid(None, &v, "layers[0].urls");

    let mut v = oci_manifest();
    v["layers"][0]["annotations"] = json!({"k": 1});
    assert_invalid(None, &v, "layers[0].annotations");

    let mut v = docker_list();
    v["manifests"][0]["platform"] = json!("linux/amd64");
    assert_invalid(None, &v, "manifests[0].platform");

    let mut v = oci_index();
    v["manifests"][0]["artifactType"] = json!(5);
    assert_invalid(None, &v, "manifests[0].artifactType");
}

#[test]
fn bad_top_level_annotations() {
    for bad in [json!(["a"]), json!({"a": {"b": "c"}}), json!("a=b")] {
        let mut v = oci_manifest();
        v["annotations"] = bad.clone();
        assert_invalid(None, &v, "annotations must be an object of string values");
    }
    let mut v = oci_manifest();
    v["annotations"] = Value::Null;
    assert!(parse(None, &v).unwrap().annotations.is_empty());
}

#[test]
fn docker_formats_reject_artifact_type() {
    let mut v = docker_manifest();
    v["artifactType"] = json!("application/vnd.example");
    assert_invalid(None, &v, "artifactType is not allowed");

    let mut v = docker_list();
    v["artifactType"] = json!("application/vnd.example");
    assert_invalid(None, &v, "artifactType is not allowed");
}

#[test]
fn bad_artifact_type() {
    for bad in [json!(1), json!("sbom")] {
        let mut v = oci_artifact();
        v["artifactType"] = bad.clone();
        assert_invalid(None, &v, "artifactType");
    }
}

#[test]
fn bad_subject() {
    let mut v = oci_artifact();
    v["subject"]["digest"] = json!("sha256:1234");
    assert_invalid(None, &v, "subject.digest");

    let mut v = oci_artifact();
    v["subject"] = json!("sha256:1234");
    assert_invalid(None, &v, "subject must be a descriptor object");

    let mut v = oci_index();
    v["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": d256("s")});
    assert_invalid(None, &v, "subject.size is required");
}

// ---- index structure ----

#[test]
fn index_manifests_required() {
    let mut v = oci_index();
    v.as_object_mut().unwrap().remove("manifests");
    assert_invalid(None, &v, "manifests is required");

    let mut v = docker_list();
    v["manifests"] = json!("x");
    assert_invalid(None, &v, "manifests must be an array");

    let mut v = oci_index();
    v["manifests"] = json!([]);
    assert!(parse(None, &v).unwrap().manifests.is_empty());
}

#[test]
fn index_child_must_be_valid_descriptor() {
    let mut v = oci_index();
    v["manifests"][1]["digest"] = json!("sha256:short");
    assert_invalid(None, &v, "manifests[1].digest");

    let mut v = docker_list();
    v["manifests"][0]["size"] = json!(-528);
    assert_invalid(None, &v, "manifests[0].size");
}

#[test]
fn index_children_of_any_media_type_are_manifests() {
    let mut v = oci_index();
    v["manifests"][0]["mediaType"] = json!("application/vnd.example.custom.manifest+json");
    let m = parse(None, &v).unwrap();
    assert_eq!(m.manifests.len(), 3);
    assert_eq!(m.blob_references().count(), 0);
}

#[test]
fn errors_convert_to_manifest_invalid() {
    let err =
        crate::DistributionError::from(parse(Some(DOCKER_MANIFEST_V1), &json!({})).unwrap_err());
    assert_eq!((err.code, err.status), (ErrorCode::ManifestInvalid, 400));
    assert!(err.message.contains("schema 1"), "{}", err.message);
    let err = crate::DistributionError::from(parse(Some(OCI_INDEX), &oci_manifest()).unwrap_err());
    assert_eq!(err.code, ErrorCode::ManifestInvalid);
}

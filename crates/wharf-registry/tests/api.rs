//! The `/v2` API end to end against a real PostgreSQL and filesystem store,
//! including the bad inputs.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

const CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// Assert the response is the spec's error envelope with `code` and `status`.
async fn assert_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "status for expected {code}");
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let body: Value = resp.json().await.expect("error body is JSON");
    let errors = body["errors"].as_array().expect("errors array");
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            CODES.contains(&e["code"].as_str().unwrap()),
            "invented code {e}"
        );
        assert!(e["message"].is_string());
    }
    assert_eq!(errors[0]["code"], code, "{body}");
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn base_endpoint_announces_the_api_version() {
    let app = TestApp::spawn().await;
    for path in ["/v2/", "/v2"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
}

#[tokio::test]
async fn monolithic_blob_push_pull_head_range_and_delete() {
    let app = TestApp::spawn().await;
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = app.push_blob("library/app", &bytes).await;
    let url = app.url(&format!("/v2/library/app/blobs/{digest}"));

    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), "100000");
    assert_eq!(header(&head, "docker-content-digest"), digest);
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert!(head.bytes().await.unwrap().is_empty());

    let get = app.client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(get.bytes().await.unwrap().as_ref(), &bytes[..]);

    let part = app
        .client
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&part, "content-range"), "bytes 10-19/100000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[10..20]);

    let suffix = app
        .client
        .get(&url)
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &bytes[99_995..]);

    let beyond = app
        .client
        .get(&url)
        .header("Range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&beyond, "content-range"), "bytes */100000");

    // Not linked to another repository: not served there.
    let other = app
        .client
        .get(app.url(&format!("/v2/library/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_error(other, 404, "BLOB_UNKNOWN").await;
    let head_other = app
        .client
        .head(app.url(&format!("/v2/library/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head_other.status(), 404);
    assert!(
        head_other.bytes().await.unwrap().is_empty(),
        "HEAD carries no body"
    );

    let del = app.client.delete(&url).send().await.unwrap();
    assert_eq!(del.status(), 202);
    assert_error(
        app.client.get(&url).send().await.unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_error(
        app.client.delete(&url).send().await.unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn monolithic_push_with_wrong_digest_stores_nothing() {
    let app = TestApp::spawn().await;
    let wrong = sha256(b"something else");
    let resp = app
        .client
        .post(app.url(&format!("/v2/library/app/blobs/uploads/?digest={wrong}")))
        .body(b"actual content".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "DIGEST_INVALID").await;
    for d in [wrong, sha256(b"actual content")] {
        let head = app
            .client
            .head(app.url(&format!("/v2/library/app/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 404);
    }
    assert_eq!(
        count_files(&app.storage.path().join("blobs")),
        0,
        "no blob file written"
    );
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn chunked_upload_with_out_of_order_chunk_status_and_final_chunk() {
    let app = TestApp::spawn().await;
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = sha256(&data);

    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let mut location = app.absolute(header(&start, "location"));
    assert!(!header(&start, "docker-upload-uuid").is_empty());

    let first = app
        .patch_chunk(&location, "0-9999", data[..10_000].to_vec())
        .await;
    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, "range"), "0-9999");
    location = app.absolute(header(&first, "location"));

    // A chunk that does not start at the end of the data so far: 416, and the
    // session is where it was.
    let skipped = app
        .patch_chunk(&location, "15000-19999", data[15_000..20_000].to_vec())
        .await;
    assert_eq!(skipped.status(), 416);
    assert_eq!(header(&skipped, "range"), "0-9999");
    let overlap = app
        .patch_chunk(&location, "5000-14999", data[5_000..15_000].to_vec())
        .await;
    assert_eq!(overlap.status(), 416);

    let status = app.client.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-9999");
    assert!(status.headers().contains_key("location"));

    // Streamed chunk without Content-Range.
    let second = app
        .client
        .patch(&location)
        .body(data[10_000..20_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(header(&second, "range"), "0-19999");
    location = app.absolute(header(&second, "location"));

    // Close with the last chunk in the PUT.
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = app
        .client
        .put(format!("{location}{sep}digest={digest}"))
        .header("Content-Range", "20000-29999")
        .header("Content-Length", "10000")
        .body(data[20_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    let pulled = app
        .client
        .get(app.url(&format!("/v2/library/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), &data[..]);

    // The session is gone.
    assert_error(
        app.client.get(&location).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn final_put_with_wrong_digest_is_rejected_and_nothing_is_visible() {
    let app = TestApp::spawn().await;
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = app.absolute(header(&start, "location"));
    app.client
        .patch(&location)
        .body(b"hello".to_vec())
        .send()
        .await
        .unwrap();
    let wrong = sha256(b"goodbye");
    let resp = app
        .client
        .put(format!("{location}?digest={wrong}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "DIGEST_INVALID").await;
    let head = app
        .client
        .head(app.url(&format!("/v2/library/app/blobs/{}", sha256(b"hello"))))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let no_digest = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = app.absolute(header(&no_digest, "location"));
    assert_error(
        app.client.put(&loc).send().await.unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;
    assert_error(
        app.client
            .put(format!("{loc}?digest=sha256:zz"))
            .send()
            .await
            .unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;
}

#[tokio::test]
async fn cancel_and_unknown_uploads() {
    let app = TestApp::spawn().await;
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = app.absolute(header(&start, "location"));
    app.client
        .patch(&location)
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.client.delete(&location).send().await.unwrap().status(),
        204
    );
    assert_error(
        app.client.get(&location).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        app.client
            .patch(&location)
            .body(vec![1u8])
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let bogus = app.url("/v2/library/app/blobs/uploads/not-a-uuid");
    assert_error(
        app.client.get(&bogus).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    // An upload is addressed through its own repository only.
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let id = header(&start, "docker-upload-uuid").to_owned();
    let elsewhere = app.url(&format!("/v2/library/other/blobs/uploads/{id}"));
    assert_error(
        app.client.get(&elsewhere).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn cross_repository_mount() {
    let app = TestApp::spawn().await;
    let digest = app.push_blob("library/source", b"shared layer").await;
    let mount = app
        .client
        .post(app.url(&format!(
            "/v2/library/target/blobs/uploads/?mount={digest}&from=library/source"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(mount.status(), 201);
    assert_eq!(
        header(&mount, "location"),
        format!("/v2/library/target/blobs/{digest}")
    );
    assert_eq!(header(&mount, "docker-content-digest"), digest);
    let got = app
        .client
        .get(app.url(&format!("/v2/library/target/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"shared layer");

    // Source does not have it: a normal upload session instead.
    let missing = sha256(b"nope");
    let fallback = app
        .client
        .post(app.url(&format!(
            "/v2/library/target/blobs/uploads/?mount={missing}&from=library/source"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 202);
    assert!(header(&fallback, "location").contains("/blobs/uploads/"));
    // No `from`: no anonymous mount, also a session.
    let anon = app
        .client
        .post(app.url(&format!("/v2/library/x/blobs/uploads/?mount={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 202);
}

#[tokio::test]
async fn sha512_blobs_and_manifests() {
    let app = TestApp::spawn().await;
    use sha2::Digest as _;
    let data = b"sha512 content".to_vec();
    let d512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&data)));
    let mono = app
        .client
        .post(app.url(&format!("/v2/library/app/blobs/uploads/?digest={d512}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(mono.status(), 201);

    let data2 = b"chunked sha512".to_vec();
    let d2 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&data2)));
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/?digest-algorithm=sha512"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let loc = app.absolute(header(&start, "location"));
    let patched = app
        .client
        .patch(&loc)
        .body(data2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 202);
    let done = app
        .client
        .put(format!(
            "{}?digest={d2}",
            app.absolute(header(&patched, "location"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    let got = app
        .client
        .get(app.url(&format!("/v2/library/app/blobs/{d2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&got, "docker-content-digest"), d2);

    let bad = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/?digest-algorithm=md5"))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "DIGEST_INVALID").await;

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d512, "size": data.len()},
        "layers": [],
        "artifactType": "application/vnd.example+type",
    })).unwrap();
    let md = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&manifest)));
    let put = app
        .put_manifest("library/app", &md, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(put.status(), 201);
    assert_eq!(header(&put, "docker-content-digest"), md);
    let get = app
        .client
        .get(app.url(&format!("/v2/library/app/manifests/{md}")))
        .send()
        .await
        .unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), &manifest[..]);
}

#[tokio::test]
async fn manifests_push_pull_by_tag_and_digest_and_delete() {
    let app = TestApp::spawn().await;
    let (manifest, digest) = app.push_image("library/app", "v1", 3).await;

    for reference in ["v1", digest.as_str()] {
        let url = app.url(&format!("/v2/library/app/manifests/{reference}"));
        let get = app
            .client
            .get(&url)
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        assert_eq!(header(&get, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&get, "docker-content-digest"), digest);
        assert_eq!(
            get.bytes().await.unwrap().as_ref(),
            &manifest[..],
            "exact bytes"
        );
        let head = app.client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(header(&head, "content-length"), manifest.len().to_string());
        assert_eq!(header(&head, "docker-content-digest"), digest);
    }
    // A client that cannot take OCI manifests is told, not handed one.
    let docker_only = app
        .client
        .get(app.url("/v2/library/app/manifests/v1"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_error(docker_only, 404, "MANIFEST_UNKNOWN").await;

    // Push the same manifest by digest, and under a second tag.
    let by_digest = app
        .put_manifest("library/app", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(by_digest.status(), 201);
    assert_eq!(
        header(&by_digest, "location"),
        format!("/v2/library/app/manifests/{digest}")
    );
    assert_eq!(
        app.put_manifest("library/app", "latest", OCI_MANIFEST, &manifest)
            .await
            .status(),
        201
    );

    // Untag: the tag goes, the manifest stays.
    let untag = app
        .client
        .delete(app.url("/v2/library/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(untag.status(), 202);
    assert_error(
        app.client
            .get(app.url("/v2/library/app/manifests/latest"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(
        app.client
            .get(app.url(&format!("/v2/library/app/manifests/{digest}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Delete by digest removes every tag pointing at it.
    let del = app
        .client
        .delete(app.url(&format!("/v2/library/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 202);
    assert_error(
        app.client
            .get(app.url("/v2/library/app/manifests/v1"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_error(
        app.client
            .delete(app.url(&format!("/v2/library/app/manifests/{digest}")))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let head = app
        .client
        .head(app.url("/v2/library/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_manifests_are_refused() {
    let app = TestApp::spawn().await;
    let config = app.push_blob("library/app", b"{}").await;
    let valid = |layers: Value| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    };
    let unknown = sha256(b"never pushed");
    let resp = app
        .put_manifest(
            "library/app",
            "v1",
            OCI_MANIFEST,
            &valid(json!([{"mediaType": LAYER, "digest": unknown, "size": 12}])),
        )
        .await;
    assert_error(resp, 404, "MANIFEST_BLOB_UNKNOWN").await;

    let resp = app
        .put_manifest("library/app", "v1", OCI_MANIFEST, b"{not json")
        .await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;

    let resp = app
        .put_manifest(
            "library/app",
            "v1",
            OCI_MANIFEST,
            &serde_json::to_vec(&json!({"schemaVersion": 1})).unwrap(),
        )
        .await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;

    // Declared size disagrees with the blob.
    let resp = app
        .put_manifest(
            "library/app",
            "v1",
            OCI_MANIFEST,
            &serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 3}, "layers": []
            }))
            .unwrap(),
        )
        .await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;

    // Body says one media type, the header another.
    let resp = app
        .put_manifest("library/app", "v1", OCI_INDEX, &valid(json!([])))
        .await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;

    // Digest reference that does not match the body.
    let resp = app
        .put_manifest(
            "library/app",
            &sha256(b"other"),
            OCI_MANIFEST,
            &valid(json!([])),
        )
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;

    // Over 4 MiB.
    let mut big = valid(json!([]));
    big.truncate(big.len() - 1);
    big.extend_from_slice(
        format!(
            r#","annotations":{{"x":"{}"}}}}"#,
            "a".repeat(4 * 1024 * 1024)
        )
        .as_bytes(),
    );
    let resp = app
        .put_manifest("library/app", "v1", OCI_MANIFEST, &big)
        .await;
    assert_error(resp, 413, "SIZE_INVALID").await;

    // Nothing was tagged by any of that.
    assert_error(
        app.client
            .get(app.url("/v2/library/app/manifests/v1"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    // A ~3.9 MB manifest is fine.
    let mut large = valid(json!([]));
    large.truncate(large.len() - 1);
    large.extend_from_slice(
        format!(r#","annotations":{{"x":"{}"}}}}"#, "a".repeat(3_900_000)).as_bytes(),
    );
    assert_eq!(
        app.put_manifest("library/app", "large", OCI_MANIFEST, &large)
            .await
            .status(),
        201
    );
    let got = app
        .client
        .get(app.url("/v2/library/app/manifests/large"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().len(), large.len());
}

#[tokio::test]
async fn image_index_requires_its_children() {
    let app = TestApp::spawn().await;
    let (amd, amd_digest) = app.push_image("library/multi", "amd64", 1).await;
    let (arm, arm_digest) = app.push_image("library/multi", "arm64", 1).await;
    let index = |second: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": amd_digest, "size": amd.len(), "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": second, "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}},
            ]
        }))
        .unwrap()
    };
    let missing = app
        .put_manifest(
            "library/multi",
            "latest",
            OCI_INDEX,
            &index(&sha256(b"absent")),
        )
        .await;
    assert_error(missing, 404, "MANIFEST_BLOB_UNKNOWN").await;
    let body = index(&arm_digest);
    let ok = app
        .put_manifest("library/multi", "latest", OCI_INDEX, &body)
        .await;
    assert_eq!(ok.status(), 201);
    let get = app
        .client
        .get(app.url("/v2/library/multi/manifests/latest"))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&get, "content-type"), OCI_INDEX);
    assert_eq!(header(&get, "docker-content-digest"), sha256(&body));
}

#[tokio::test]
async fn tag_list_and_catalog_paginate_in_byte_order() {
    let app = TestApp::spawn().await;
    let (manifest, _) = app.push_image("library/app", "b", 1).await;
    for tag in ["a", "C", "c", "a1", "z"] {
        assert_eq!(
            app.put_manifest("library/app", tag, OCI_MANIFEST, &manifest)
                .await
                .status(),
            201
        );
    }
    let all: Value = app
        .client
        .get(app.url("/v2/library/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all,
        json!({"name": "library/app", "tags": ["C", "a", "a1", "b", "c", "z"]})
    );

    let page = app
        .client
        .get(app.url("/v2/library/app/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    let link = header(&page, "link").to_owned();
    assert_eq!(link, "</v2/library/app/tags/list?n=2&last=a>; rel=\"next\"");
    let body: Value = page.json().await.unwrap();
    assert_eq!(body["tags"], json!(["C", "a"]));
    let next = app
        .client
        .get(app.url("/v2/library/app/tags/list?n=2&last=a"))
        .send()
        .await
        .unwrap();
    let body: Value = next.json().await.unwrap();
    assert_eq!(body["tags"], json!(["a1", "b"]));
    // `last` need not exist.
    let body: Value = app
        .client
        .get(app.url("/v2/library/app/tags/list?last=bb"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tags"], json!(["c", "z"]));
    let tail = app
        .client
        .get(app.url("/v2/library/app/tags/list?n=10&last=c"))
        .send()
        .await
        .unwrap();
    assert!(tail.headers().get("link").is_none());
    let zero = app
        .client
        .get(app.url("/v2/library/app/tags/list?n=0"))
        .send()
        .await
        .unwrap();
    assert!(zero.headers().get("link").is_none());
    assert_eq!(zero.json::<Value>().await.unwrap()["tags"], json!([]));

    assert_error(
        app.client
            .get(app.url("/v2/library/nothing/tags/list"))
            .send()
            .await
            .unwrap(),
        404,
        "NAME_UNKNOWN",
    )
    .await;
    assert_eq!(
        app.client
            .get(app.url("/v2/library/app/tags/list?n=-1"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    app.push_blob("library/zeta", b"z").await;
    app.push_blob("other/alpha", b"a").await;
    let cat = app
        .client
        .get(app.url("/v2/_catalog?n=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&cat, "link"),
        "</v2/_catalog?n=2&last=library%2Fzeta>; rel=\"next\""
    );
    let body: Value = cat.json().await.unwrap();
    assert_eq!(body["repositories"], json!(["library/app", "library/zeta"]));
    let rest: Value = app
        .client
        .get(app.url("/v2/_catalog?n=2&last=library%2Fzeta"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["repositories"], json!(["other/alpha"]));
}

#[tokio::test]
async fn referrers_subject_header_filter_and_fallback_tag() {
    let app = TestApp::spawn().await;
    let (_, subject) = app.push_image("library/app", "v1", 1).await;
    let empty = app.push_blob("library/app", b"{}").await;
    let artifact = |kind: &str, note: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
            "annotations": {"note": note},
        }))
        .unwrap()
    };
    let sig = artifact("application/vnd.example.signature", "sig");
    let sbom = artifact("application/spdx+json", "sbom");
    for body in [&sig, &sbom] {
        let put = app
            .put_manifest("library/app", &sha256(body), OCI_MANIFEST, body)
            .await;
        assert_eq!(put.status(), 201);
        assert_eq!(header(&put, "oci-subject"), subject);
    }
    let all = app
        .client
        .get(app.url(&format!("/v2/library/app/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(header(&all, "content-type"), OCI_INDEX);
    assert!(all.headers().get("oci-filters-applied").is_none());
    let index: Value = all.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    let sig_entry = manifests
        .iter()
        .find(|m| m["digest"] == sha256(&sig))
        .unwrap();
    assert_eq!(
        sig_entry["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(sig_entry["annotations"]["note"], "sig");
    assert_eq!(sig_entry["size"], sig.len());

    let filtered = app
        .client
        .get(app.url(&format!(
            "/v2/library/app/referrers/{subject}?artifactType=application/spdx%2Bjson"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&filtered, "oci-filters-applied"), "artifactType");
    let index: Value = filtered.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sha256(&sbom));

    // Subject pushed later / never: still accepted, empty list for unknown subjects.
    let none = app
        .client
        .get(app.url(&format!("/v2/library/app/referrers/{}", sha256(b"x"))))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 200);
    assert_eq!(none.json::<Value>().await.unwrap()["manifests"], json!([]));
    assert_error(
        app.client
            .get(app.url("/v2/library/app/referrers/sha256:123"))
            .send()
            .await
            .unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;

    // A referrer recorded only in the fallback tag index is folded in.
    let (legacy, legacy_digest) = app.push_image("library/app", "legacy", 0).await;
    let fallback = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": legacy_digest, "size": legacy.len(), "artifactType": "application/vnd.legacy"}]
    }))
    .unwrap();
    let tag = subject.replace(':', "-");
    assert_eq!(
        app.put_manifest("library/app", &tag, OCI_INDEX, &fallback)
            .await
            .status(),
        201
    );
    let index: Value = app
        .client
        .get(app.url(&format!("/v2/library/app/referrers/{subject}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn hostile_names_and_references_are_rejected() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(300);
    for path in [
        "/v2/Library/app/tags/list".to_owned(),
        "/v2/library%2Fapp/tags/list".to_owned(),
        "/v2/library/a..b/tags/list".to_owned(),
        format!("/v2/library/{long}/tags/list"),
        "/v2/library/app-/manifests/v1".to_owned(),
    ] {
        let resp = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_error(resp, 400, "NAME_INVALID").await;
    }
    let bad_digest = app
        .client
        .get(app.url("/v2/library/app/blobs/sha256:notadigest"))
        .send()
        .await
        .unwrap();
    assert_error(bad_digest, 400, "DIGEST_INVALID").await;
    let bad_tag = app
        .client
        .get(app.url("/v2/library/app/manifests/-bad"))
        .send()
        .await
        .unwrap();
    assert_error(bad_tag, 400, "MANIFEST_INVALID").await;
    let not_allowed = app
        .client
        .post(app.url("/v2/library/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_error(not_allowed, 405, "UNSUPPORTED").await;
}

mod seams {
    use super::*;
    use wharf_registry::seams::{Access, Action, AuthError, Authorizer, Principal};

    /// Allows pulls to everybody and pushes to nobody without credentials.
    struct PullOnly;

    #[async_trait::async_trait(?Send)]
    impl Authorizer for PullOnly {
        async fn authorize(
            &self,
            req: &actix_web::HttpRequest,
            access: &[Access],
        ) -> Result<Principal, AuthError> {
            let authorization = req.headers().get("authorization");
            let pushes = access.iter().any(|a| matches!(a, Access::Repository { actions, .. } if actions.contains(&Action::Push)));
            if pushes && authorization.is_none() {
                return Err(AuthError::Unauthorized {
                    challenge: "Bearer realm=\"http://127.0.0.1/service/token\",service=\"wharf\""
                        .into(),
                    message: "authentication required".into(),
                });
            }
            if pushes {
                return Err(AuthError::Denied {
                    message: "push denied".into(),
                });
            }
            Ok(Principal::default())
        }
    }

    /// Cannot reach its database.
    struct Broken;

    #[async_trait::async_trait(?Send)]
    impl Authorizer for Broken {
        async fn authorize(
            &self,
            _: &actix_web::HttpRequest,
            _: &[Access],
        ) -> Result<Principal, AuthError> {
            Err(AuthError::Unavailable {
                cause: "connection refused (secret detail)".into(),
            })
        }
    }

    #[tokio::test]
    async fn an_authorizer_that_cannot_decide_is_a_503_not_a_401() {
        let app = TestApp::spawn_with(|r| r.with_authorizer(std::sync::Arc::new(Broken))).await;
        let resp = app
            .client
            .get(app.url("/v2/library/app/tags/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(header(&resp, "retry-after"), "5");
        assert!(!resp.text().await.unwrap().contains("secret detail"));
    }

    #[tokio::test]
    async fn the_authorizer_decides_before_the_handler_runs() {
        let app = TestApp::spawn_with(|r| r.with_authorizer(std::sync::Arc::new(PullOnly))).await;
        let resp = app
            .client
            .post(app.url("/v2/library/app/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&resp, "www-authenticate"),
            "Bearer realm=\"http://127.0.0.1/service/token\",service=\"wharf\""
        );
        assert_error(resp, 401, "UNAUTHORIZED").await;
        let resp = app
            .client
            .post(app.url("/v2/library/app/blobs/uploads/"))
            .header("Authorization", "Bearer x")
            .send()
            .await
            .unwrap();
        assert_error(resp, 403, "DENIED").await;
        assert_eq!(
            app.client
                .get(app.url("/v2/"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn abandoned_uploads_are_purged() {
    let app = TestApp::spawn().await;
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = app.absolute(header(&start, "location"));
    let id = header(&start, "docker-upload-uuid").to_owned();
    app.client
        .patch(&location)
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap();
    let upload_dir = app.storage.path().join("uploads").join(&id);
    assert!(upload_dir.exists());

    // A second registry on the same database and store, as another replica
    // running its maintenance, with a purge age of zero.
    let mut url = url::Url::parse(&database_url()).unwrap();
    url.set_path(&app.db_name);
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let store = wharf_store::BlobStore::from_config(&wharf_store::StorageConfig::Filesystem {
        root: app.storage.path().to_path_buf(),
    })
    .await
    .unwrap();
    let config = wharf_registry::RegistryConfig {
        upload_purge_after_secs: 0,
        ..Default::default()
    };
    let replica = wharf_registry::Registry::new(pool.clone(), store, config);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(replica.purge_abandoned_uploads().await.unwrap() >= 1);
    pool.close().await;

    assert_error(
        app.client.get(&location).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert!(!upload_dir.exists(), "upload data removed");
}

#[tokio::test]
async fn docker_schema2_manifest_and_manifest_list() {
    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    let app = TestApp::spawn().await;
    let config = app
        .push_blob(
            "library/docker",
            br#"{"architecture":"amd64","os":"linux"}"#,
        )
        .await;
    let layer = app.push_blob("library/docker", b"docker layer").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 37},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer, "size": 12}],
    }))
    .unwrap();
    let put = app
        .put_manifest("library/docker", "v1", DOCKER_MANIFEST, &manifest)
        .await;
    assert_eq!(put.status(), 201, "{:?}", put.text().await);
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    assert_eq!(
        app.put_manifest("library/docker", "multi", DOCKER_LIST, &list)
            .await
            .status(),
        201
    );
    let get = app
        .client
        .get(app.url("/v2/library/docker/manifests/multi"))
        .header("Accept", format!("{DOCKER_MANIFEST}, {DOCKER_LIST}"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&get, "content-type"), DOCKER_LIST);
    assert_eq!(get.bytes().await.unwrap().as_ref(), &list[..]);
    // Schema 1 is not accepted.
    let schema1 = serde_json::to_vec(
        &json!({"schemaVersion": 1, "name": "library/docker", "tag": "old", "fsLayers": []}),
    )
    .unwrap();
    let resp = app
        .put_manifest(
            "library/docker",
            "old",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            &schema1,
        )
        .await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn malformed_chunk_headers_leave_the_session_intact() {
    let app = TestApp::spawn().await;
    let start = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = app.absolute(header(&start, "location"));
    let garbage = app
        .patch_chunk(&location, "bytes=oops", vec![1u8; 10])
        .await;
    assert_error(garbage, 400, "BLOB_UPLOAD_INVALID").await;
    // Declared range and body length disagree.
    let lying = app.patch_chunk(&location, "0-99", vec![1u8; 10]).await;
    assert_eq!(lying.status(), 416);
    assert_eq!(header(&lying, "range"), "0-0");
    // The session still works from where it was.
    let ok = app.patch_chunk(&location, "0-9", vec![1u8; 10]).await;
    assert_eq!(ok.status(), 202);
    assert_eq!(header(&ok, "range"), "0-9");
    let done = app
        .client
        .put(format!(
            "{}?digest={}",
            app.absolute(header(&ok, "location")),
            sha256(&[1u8; 10])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    // Bad `n` on the catalog, bad digest in a mount.
    assert_eq!(
        app.client
            .get(app.url("/v2/_catalog?n=abc"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let bad_mount = app
        .client
        .post(app.url("/v2/library/app/blobs/uploads/?mount=sha256:1&from=library/x"))
        .send()
        .await
        .unwrap();
    assert_error(bad_mount, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn push_by_digest_may_set_tags() {
    let app = TestApp::spawn().await;
    let (manifest, digest) = app.push_image("library/app", "first", 1).await;
    let resp = app
        .client
        .put(app.url(&format!(
            "/v2/library/app/manifests/{digest}?tag=v2&tag=stable"
        )))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let echoed: Vec<_> = resp
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(echoed, ["v2", "stable"]);
    for tag in ["v2", "stable"] {
        let got = app
            .client
            .get(app.url(&format!("/v2/library/app/manifests/{tag}")))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&got, "docker-content-digest"), digest);
    }
    let bad = app
        .put_manifest(
            "library/app",
            &format!("{digest}?tag=-nope"),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    assert_error(bad, 400, "MANIFEST_INVALID").await;
}

//! `wharf check` on a real registry's database and storage: consistent after
//! pushes; then each kind of damage a bad restore causes (bytes missing,
//! truncated or rewritten, a record missing under its manifests, bytes
//! without a record) is made by hand and must be reported, with exit status
//! 1 for the damage that breaks pulls and 0 for the harmless kind.
//! Also `wharf probe` against the running server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sqlx::Connection;
use support::*;

/// `wharf <args>` on `backend`'s database and data directory (`probe` has
/// none), with none of
/// the test's own WHARF_* environment.
fn wharf(backend: &Backend, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("WHARF_") || k == "DATABASE_URL")
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    if args[0] != "probe" {
        cmd.arg("--data-dir").arg(backend.data_dir());
    }
    cmd.env("DATABASE_URL", backend.database_url().expect("a database"))
        .env("WHARF_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("running wharf")
}

/// `wharf check --json`: exit code and parsed report.
fn check(backend: &Backend, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let out = wharf(backend, &args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn blob_path(backend: &Backend, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    backend
        .data_dir()
        .join("storage/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
}

fn digests(report: &Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not a list: {report}"))
        .iter()
        .map(|item| item["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn check_reports_what_a_bad_restore_breaks() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: wharf check is Wharf's own");
        return;
    }
    let server = backend.start().await;
    let oci = Oci::new();
    let mut rng = Rng::new();
    let app = random_image(&mut rng, 2, 20_000, "amd64");
    oci.push_image(&server.base, "library/app", "1.0", &app)
        .await
        .unwrap();
    let multi = random_index(&mut rng, 1, 10_000);
    for image in &multi.images {
        oci.push_image(&server.base, "library/multi", &image.manifest.digest, image)
            .await
            .unwrap();
    }
    oci.put_manifest(&server.base, "library/multi", "latest", &multi.index)
        .await
        .unwrap();

    // The probe a container health check runs, against the live server.
    let out = wharf(
        &backend,
        &[
            "probe",
            "--url",
            &format!("{}/api/v2.0/health", server.base),
        ],
    );
    assert!(out.status.success(), "probe: {out:?}");
    let out = wharf(
        &backend,
        &["probe", "--url", &format!("{}/v2/", server.base)],
    );
    assert_eq!(out.status.code(), Some(1), "a 401 is not healthy: {out:?}");

    // Consistent while the server runs, and after it stops.
    let (code, report) = check(&backend, &[]);
    assert_eq!(code, 0, "{report}");
    drop(server);
    let (code, report) = check(&backend, &["--verify-digests"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["consistent"], true);
    // app: config, 2 layers, manifest; multi: 2 x (config, layer, manifest) + index.
    assert_eq!(report["blobs_checked"], 11, "{report}");
    assert_eq!(report["manifests_checked"], 4, "{report}");
    assert_eq!(report["stored_objects"], 11, "{report}");
    assert_eq!(report["extra_count"], 0, "{report}");

    // Bytes without a record (what the store copied after the dump holds):
    // reported, harmless.
    let stray = rng.bytes(3000);
    let stray_digest = sha256_digest(&stray);
    write(&blob_path(&backend, &stray_digest), &stray);
    let (code, report) = check(&backend, &[]);
    assert_eq!(code, 0, "extras alone are consistent: {report}");
    assert_eq!(digests(&report, "extra"), vec![stray_digest.clone()]);
    assert_eq!(report["extra_bytes"], 3000);

    // A layer's bytes gone: inconsistent, and the artifact needing it named.
    let lost = &app.layers[1];
    std::fs::remove_file(blob_path(&backend, &lost.digest)).unwrap();
    // The config truncated.
    let truncated = &app.config;
    write(
        &blob_path(&backend, &truncated.digest),
        &truncated.bytes[..truncated.bytes.len() / 2],
    );
    // A layer of the index rewritten with other bytes of the same size:
    // only hashing finds that.
    let rewritten = &multi.images[0].layers[0];
    write(
        &blob_path(&backend, &rewritten.digest),
        &rng.bytes(rewritten.bytes.len()),
    );
    let (code, report) = check(&backend, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["consistent"], false);
    assert_eq!(digests(&report, "missing"), vec![lost.digest.clone()]);
    let used_by = report["missing"][0]["used_by"].to_string();
    assert!(
        used_by.contains(&format!("library/app@{}", app.manifest.digest))
            && used_by.contains("tags 1.0"),
        "{used_by}"
    );
    assert_eq!(
        digests(&report, "size_mismatches"),
        vec![truncated.digest.clone()]
    );
    assert_eq!(
        report["size_mismatches"][0]["recorded"],
        truncated.bytes.len()
    );
    assert_eq!(report["corrupt_count"], 0, "not hashed without the flag");
    let (code, report) = check(&backend, &["--verify-digests"]);
    assert_eq!(code, 1);
    assert_eq!(digests(&report, "corrupt"), vec![rewritten.digest.clone()]);

    // Put the bytes back: consistent again.
    write(&blob_path(&backend, &lost.digest), &lost.bytes);
    write(&blob_path(&backend, &truncated.digest), &truncated.bytes);
    write(&blob_path(&backend, &rewritten.digest), &rewritten.bytes);
    let (code, report) = check(&backend, &["--verify-digests"]);
    assert_eq!(code, 0, "{report}");

    // Records missing under manifests that reference them (a dump older
    // than the manifests would not do this, but a partial restore can): the
    // layer's record, and one child manifest of the index.
    let mut db = sqlx::PgConnection::connect(backend.database_url().unwrap())
        .await
        .unwrap();
    let layer = &app.layers[0].digest;
    sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
        .bind(layer)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM blobs WHERE digest = $1")
        .bind(layer)
        .execute(&mut db)
        .await
        .unwrap();
    let child = &multi.images[1].manifest.digest;
    sqlx::query("DELETE FROM manifests WHERE digest = $1")
        .bind(child)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let (code, report) = check(&backend, &[]);
    assert_eq!(code, 1, "{report}");
    let dangling: Vec<(String, String, String)> = report["dangling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["repository"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
                d["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        dangling,
        vec![
            ("library/app".into(), "blob".into(), layer.clone()),
            ("library/multi".into(), "manifest".into(), child.clone()),
        ],
        "{report}"
    );
    // The layer's bytes are still stored: now they are an extra.
    let mut extras = digests(&report, "extra");
    extras.sort();
    let mut expected = vec![layer.clone(), stray_digest];
    expected.sort();
    assert_eq!(extras, expected);

    // The text form says the same for an operator.
    let out = wharf(&backend, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("DANGLING library/app@{}", app.manifest.digest)),
        "{text}"
    );
    assert!(text.contains("INCONSISTENT"), "{text}");
}

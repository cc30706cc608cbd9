//! `kill -9` in the middle of concurrent pushes, then a restart on the same data
//! directory and database. What was acknowledged survives intact; what was not
//! is either absent or complete; unfinished uploads never become blobs.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::{Backend, Image, Oci, Rng, sha256_digest};

const WORKERS: usize = 6;
const IMAGES_PER_WORKER: usize = 60;
/// Acknowledged pushes to wait for before pulling the plug.
const KILL_AFTER_ACKS: usize = 15;

/// Repository of the worker that does nothing but tag, so that some manifest
/// PUT is almost surely in flight at the kill.
const TAGGER_REPO: &str = "crash/tagger";
/// Bound on the tagger's loop.
const TAGGER_MAX_TAGS: usize = 5_000;

#[derive(Default)]
struct Ledger {
    /// Manifest PUT answered 201 before the kill.
    acked: Vec<(String, String, Image)>,
    /// Manifest PUT sent, answer never seen.
    unacked: Vec<(String, String, Image)>,
    /// Upload sessions that were never closed: `(repo, digest of the full blob)`.
    unfinished: Vec<(String, String)>,
}

async fn worker(oci: Oci, base: String, id: usize, ledger: Arc<Mutex<Ledger>>) {
    let mut rng = Rng::new();
    let repo = format!("crash/w{id}");
    for i in 0..IMAGES_PER_WORKER {
        let layer_bytes = 32 * 1024 + (rng.next_u64() % (768 * 1024)) as usize;
        let image = support::random_image(&mut rng, 2, layer_bytes, "amd64");
        let tag = format!("t{i}");

        // Every third image also leaves an upload half done.
        if i % 3 == 0 {
            let blob = rng.bytes(512 * 1024);
            let digest = sha256_digest(&blob);
            ledger
                .lock()
                .unwrap()
                .unfinished
                .push((repo.clone(), digest));
            let Ok(mut upload) = oci.start_upload(&base, &repo).await else {
                return;
            };
            if oci
                .patch_chunk(&base, &mut upload, &blob[..256 * 1024])
                .await
                .is_err()
            {
                return;
            }
        }

        // One layer chunked, the rest monolithic, like real clients mix them.
        let pushed = async {
            oci.push_blob_chunked(&base, &repo, &image.layers[0].bytes, 64 * 1024)
                .await?;
            oci.push_blob(&base, &repo, &image.layers[1].bytes).await?;
            oci.push_blob(&base, &repo, &image.config.bytes).await?;
            anyhow::Ok(())
        };
        if pushed.await.is_err() {
            return;
        }
        ledger
            .lock()
            .unwrap()
            .unacked
            .push((repo.clone(), tag.clone(), image.clone()));
        match oci.put_manifest(&base, &repo, &tag, &image.manifest).await {
            Ok(_) => {
                let mut l = ledger.lock().unwrap();
                l.unacked.retain(|(r, t, _)| !(r == &repo && t == &tag));
                l.acked.push((repo.clone(), tag, image));
            }
            Err(_) => return,
        }
    }
}

/// Pushes one image's blobs, then the manifest under tag after tag.
async fn tagger(oci: Oci, base: String, ledger: Arc<Mutex<Ledger>>) {
    let mut rng = Rng::new();
    let image = support::random_image(&mut rng, 1, 16 * 1024, "amd64");
    for blob in image.blobs() {
        if oci
            .push_blob(&base, TAGGER_REPO, &blob.bytes)
            .await
            .is_err()
        {
            return;
        }
    }
    for i in 0..TAGGER_MAX_TAGS {
        let tag = format!("s{i}");
        let entry = (TAGGER_REPO.to_owned(), tag.clone(), image.clone());
        ledger.lock().unwrap().unacked.push(entry.clone());
        if oci
            .put_manifest(&base, TAGGER_REPO, &tag, &image.manifest)
            .await
            .is_err()
        {
            return;
        }
        let mut l = ledger.lock().unwrap();
        l.unacked
            .retain(|(r, t, _)| !(r == TAGGER_REPO && t == &tag));
        l.acked.push(entry);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_kill_9_and_nothing_half_written_shows() {
    let backend = Backend::new().await;
    let mut server = backend.start().await;
    server.create_project("crash", false).await.unwrap();
    let oci = Oci::new();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // An upload whose PATCH body is still streaming when the process dies.
    let mut rng = Rng::new();
    let streaming = rng.bytes(2 * 1024 * 1024);
    let streaming_digest = sha256_digest(&streaming);
    let mut upload = oci
        .start_upload(&server.base, "crash/streaming")
        .await
        .unwrap();
    oci.patch_chunk(&server.base, &mut upload, &streaming[..512 * 1024])
        .await
        .unwrap();
    let (feed, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let patch = oci
        .http
        .patch(format!("{}{}", server.base, upload.location))
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Range",
            format!("{}-{}", 512 * 1024, streaming.len() - 1),
        )
        .header("Content-Length", streaming.len() - 512 * 1024)
        .body(reqwest::Body::wrap_stream(body));
    let patcher = oci.clone();
    let stuck_patch = tokio::spawn(async move { patcher.send(patch).await });
    feed.send(streaming[512 * 1024..1024 * 1024].to_vec())
        .await
        .unwrap();

    let mut workers: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(oci.clone(), server.base.clone(), id, ledger.clone())))
        .collect();
    workers.push(tokio::spawn(tagger(
        oci.clone(),
        server.base.clone(),
        ledger.clone(),
    )));

    let deadline = Instant::now() + Duration::from_secs(120);
    let image_pushes = |l: &Ledger| l.acked.iter().filter(|(r, _, _)| r != TAGGER_REPO).count();
    while image_pushes(&ledger.lock().unwrap()) < KILL_AFTER_ACKS {
        assert!(
            Instant::now() < deadline,
            "no {KILL_AFTER_ACKS} pushes acknowledged within 2 minutes"
        );
        assert!(
            !workers.iter().all(|w| w.is_finished()),
            "workers stopped before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    drop(feed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("worker ends after the kill")
            .unwrap();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), stuck_patch).await;

    let server = backend.start().await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "killed with {} acknowledged pushes, {} unacknowledged manifest PUTs, {} unfinished uploads",
        ledger.acked.len(),
        ledger.unacked.len(),
        ledger.unfinished.len()
    );

    for (repo, tag, image) in &ledger.acked {
        oci.assert_image(&server.base, repo, tag, image)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {repo}:{tag} lost or damaged: {e:#}"));
    }
    for (repo, tag, image) in &ledger.unacked {
        let pulled = oci.get_manifest(&server.base, repo, tag).await.unwrap();
        match pulled.status {
            StatusCode::NOT_FOUND => {}
            StatusCode::OK => oci
                .assert_image(&server.base, repo, tag, image)
                .await
                .unwrap_or_else(|e| {
                    panic!("unacknowledged {repo}:{tag} visible but incomplete: {e:#}")
                }),
            other => panic!("{repo}:{tag} answers {other} after restart"),
        }
    }
    for (repo, digest) in ledger
        .unfinished
        .iter()
        .chain([&("crash/streaming".to_owned(), streaming_digest)])
    {
        let status = oci.head_blob(&server.base, repo, digest).await.unwrap();
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "unfinished upload {repo}@{digest} visible"
        );
    }
    // Every tag listed after the restart pulls completely.
    let all: Vec<_> = ledger.acked.iter().chain(&ledger.unacked).collect();
    for repo in (0..WORKERS)
        .map(|id| format!("crash/w{id}"))
        .chain([TAGGER_REPO.to_owned()])
    {
        for tag in oci.tags(&server.base, &repo).await.unwrap() {
            let (_, _, image) = all
                .iter()
                .find(|(r, t, _)| r == &repo && t == &tag)
                .unwrap_or_else(|| panic!("{repo}:{tag} listed but never pushed"));
            oci.assert_image(&server.base, &repo, &tag, image)
                .await
                .unwrap();
        }
    }

    // The restarted registry takes new pushes.
    let image = support::random_image(&mut rng, 1, 64 * 1024, "amd64");
    oci.push_image(&server.base, "crash/after", "v1", &image)
        .await
        .unwrap();
    oci.assert_image(&server.base, "crash/after", "v1", &image)
        .await
        .unwrap();
}

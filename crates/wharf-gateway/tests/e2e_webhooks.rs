//! Webhooks through the real binary: a push to a project with a webhook
//! policy reaches a receiver that was down when the push happened and came
//! up later, in Harbor's payload with the configured external host, with the
//! configured delivery settings (`[webhooks]`), and the failed attempt and
//! the delivered one are both in the project's delivery log.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Rng, free_port, random_image};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A one-route HTTP receiver on `port`: every request's body goes to the
/// channel and is answered 200.
async fn receive_on(port: u16) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Headers, then as many body bytes as Content-Length says.
                let (head_end, length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (at + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let _ = tx.send((head, buf[head_end..head_end + length].to_vec()));
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    rx
}

async fn delivery_log(
    http: &reqwest::Client,
    base: &str,
    project: &str,
    policy: i64,
) -> Vec<Value> {
    let resp = http
        .get(format!(
            "{base}/api/v2.0/projects/{project}/webhook/jobs?policy_id={policy}"
        ))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reaches_a_receiver_that_comes_back() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: webhooks are Wharf's");
        return;
    }
    let server = backend
        .start_with_env(&[
            ("WHARF_EXTERNAL_URL", "https://registry.example:8443".into()),
            ("WHARF_WEBHOOKS_TIMEOUT_SECS", "2".into()),
            ("WHARF_WEBHOOKS_MAX_ATTEMPTS", "5".into()),
        ])
        .await;
    server.create_project("hooked", false).await.unwrap();
    let http = reqwest::Client::new();
    // Nothing listens on the port yet: the first attempt is refused.
    let port = free_port();
    let resp = http
        .post(format!(
            "{}/api/v2.0/projects/hooked/webhook/policies",
            server.base
        ))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({
            "name": "ci",
            "enabled": true,
            "event_types": ["PUSH_ARTIFACT"],
            "targets": [{"type": "http", "address": format!("http://127.0.0.1:{port}/hook"),
                         "auth_header": "Bearer hook-secret"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let policy: i64 = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .expect("Location names the policy");

    let mut rng = Rng::new();
    let image = random_image(&mut rng, 1, 1024, "amd64");
    // Basic straight to /v2: the token realm names the external host, which
    // does not resolve here.
    for blob in image.blobs() {
        let resp = http
            .post(format!(
                "{}/v2/hooked/app/blobs/uploads/?digest={}",
                server.base, blob.digest
            ))
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
            .body(blob.bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = http
        .put(format!("{}/v2/hooked/app/manifests/v1", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .header("content-type", image.manifest.media_type.as_str())
        .body(image.manifest.bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The push is acknowledged at once; its delivery fails and waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = delivery_log(&http, &server.base, "hooked", policy).await;
        if log.iter().any(|d| d["run_count"].as_i64() >= Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt was made: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut received = receive_on(port).await;
    let (head, body) = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("the retry never came")
        .unwrap();
    assert!(head.starts_with("POST /hook "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer hook-secret"),
        "{head}"
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["type"], "PUSH_ARTIFACT", "{payload}");
    assert_eq!(payload["operator"], "admin", "{payload}");
    let resource = &payload["event_data"]["resources"][0];
    assert_eq!(
        resource["digest"],
        image.manifest.digest.as_str(),
        "{payload}"
    );
    assert_eq!(resource["tag"], "v1");
    assert_eq!(
        resource["resource_url"], "registry.example:8443/hooked/app:v1",
        "{payload}"
    );
    assert_eq!(
        payload["event_data"]["repository"]["repo_full_name"],
        "hooked/app"
    );

    // The log ends delivered, after the refused attempt.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = delivery_log(&http, &server.base, "hooked", policy).await;
        if log.len() == 1 && log[0]["status"] == "Success" {
            let attempts = log[0]["attempts"].as_array().unwrap();
            assert!(attempts.len() >= 2, "{log:?}");
            assert_eq!(attempts.last().unwrap()["response_code"], 200, "{log:?}");
            assert!(attempts[0]["error"].is_string(), "{log:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not recorded as sent: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

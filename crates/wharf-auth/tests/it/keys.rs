//! The signing key: made at first start with private file modes, reused on
//! restart, and published so that every replica verifies every other's
//! tokens.

use std::os::unix::fs::PermissionsExt;

use actix_web::test::TestRequest;
use wharf_auth::{Auth, AuthConfig, AuthError};
use wharf_registry::seams::Access;

use crate::support::TestApp;

fn config_with_key(path: std::path::PathBuf) -> AuthConfig {
    AuthConfig {
        signing_key: Some(path),
        ..AuthConfig::default()
    }
}

async fn kids(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT kid FROM token_signing_keys ORDER BY created_at")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_key_is_private_reused_and_shared_between_replicas() {
    let app = TestApp::spawn().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&app.key_path), 0o600);
    assert_eq!(mode(app.key_path.parent().unwrap()), 0o700);
    let first = kids(&app).await;
    assert_eq!(first.len(), 1);

    // A restart with the same file publishes nothing new.
    Auth::start(
        app.pool.clone(),
        config_with_key(app.key_path.clone()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(kids(&app).await, first);

    // A second replica with its own key verifies the first one's tokens.
    let other_dir = tempfile::tempdir().unwrap();
    let replica = Auth::start(
        app.pool.clone(),
        config_with_key(other_dir.path().join("key.pem")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(kids(&app).await.len(), 2);
    let token = app.token(Some(&app.admin_creds()), &[]).await;
    let req = TestRequest::get()
        .uri("/v2/")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_http_request();
    let principal = replica
        .authorizer()
        .authorize(&req, &[Access::Base])
        .await
        .expect("a token from another replica verifies");
    assert_eq!(principal.name.as_deref(), Some("admin"));
    let forged = format!("{token}x");
    let req = TestRequest::get()
        .uri("/v2/")
        .insert_header(("Authorization", format!("Bearer {forged}")))
        .to_http_request();
    assert!(
        replica
            .authorizer()
            .authorize(&req, &[Access::Base])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unusable_keys_stop_the_start() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();

    let missing = Auth::start(app.pool.clone(), AuthConfig::default(), None).await;
    assert!(matches!(missing, Err(AuthError::Config(_))), "no key path");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let refused = Auth::start(app.pool.clone(), config_with_key(garbage), None).await;
    assert!(matches!(refused, Err(AuthError::SigningKey { .. })));

    let wrong_kind = dir.path().join("cert.pem");
    std::fs::write(
        &wrong_kind,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let refused = Auth::start(app.pool.clone(), config_with_key(wrong_kind), None).await;
    let Err(AuthError::SigningKey { message, .. }) = refused else {
        panic!("a certificate is no signing key");
    };
    assert!(message.contains("CERTIFICATE"), "{message}");

    let bad_proxy = AuthConfig {
        trusted_proxies: vec!["not-an-address".into()],
        ..config_with_key(dir.path().join("k.pem"))
    };
    let refused = Auth::start(app.pool.clone(), bad_proxy, None).await;
    assert!(matches!(refused, Err(AuthError::Config(_))));
}

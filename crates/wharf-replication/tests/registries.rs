//! Stored endpoints: sealed secrets that the record never shows, and a ping
//! that records health, against a real htpasswd-protected docker-registry.

use std::sync::Arc;

use wharf_replication::crypto::SecretKey;
use wharf_replication::registries::{Registries, RegistryKind, RegistrySpec};

mod support;
use support::*;

#[tokio::test]
async fn registries_seal_secrets_and_ping_records_health() {
    let db = TestDb::new().await;
    let reg = start_distribution(true);
    let key = Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key.clone());

    let mut spec = RegistrySpec {
        name: "dr-site".into(),
        kind: RegistryKind::parse("docker-registry").unwrap(),
        url: format!("{}/", reg.base),
        description: "disaster recovery".into(),
        access_key: Some(USER.into()),
        access_secret: Some("wrong-password".into()),
        insecure: false,
    };
    let created = registries.create(&spec).await.unwrap();
    assert_eq!(created.status, "unknown");
    assert_eq!(created.url, reg.base, "trailing slash trimmed");
    assert!(
        registries
            .create(&spec)
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    assert!(RegistryKind::parse("quay").is_err());

    // The secret is not stored in the clear.
    let (stored,): (String,) =
        sqlx::query_as("SELECT access_secret FROM replication_registries WHERE id = $1")
            .bind(created.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!stored.contains("wrong-password"));
    assert_eq!(key.open(&stored).unwrap(), "wrong-password");

    let pinged = registries.ping(created.id).await.unwrap().unwrap();
    assert_eq!(pinged.status, "unhealthy");
    assert!(
        pinged.status_message.contains("refused the credentials"),
        "{}",
        pinged.status_message
    );

    spec.access_secret = Some(PASSWORD.into());
    registries.update(created.id, &spec).await.unwrap().unwrap();
    let pinged = registries.ping(created.id).await.unwrap().unwrap();
    assert_eq!(pinged.status, "healthy", "{}", pinged.status_message);
    assert!(pinged.status_checked_at.is_some());

    // An update without a secret keeps the stored one.
    spec.access_secret = None;
    spec.description = "moved".into();
    let updated = registries.update(created.id, &spec).await.unwrap().unwrap();
    assert_eq!(updated.description, "moved");
    assert_eq!(
        registries.ping(created.id).await.unwrap().unwrap().status,
        "healthy"
    );

    // A key other than the one that sealed it cannot open the secret.
    let other = Registries::new(
        db.pool.clone(),
        Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap()),
    );
    assert!(other.client(created.id).await.is_err());

    assert_eq!(registries.list().await.unwrap().len(), 1);
    assert!(registries.delete(created.id).await.unwrap());
    assert!(registries.get(created.id).await.unwrap().is_none());
    assert!(registries.ping(created.id).await.unwrap().is_none());
}

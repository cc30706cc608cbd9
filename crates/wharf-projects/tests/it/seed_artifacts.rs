//! Registry rows written straight into the database (repositories, blobs,
//! manifests, tags), for tests of the API parts that read artifacts without
//! needing a real push: labels, search and statistics.

#![allow(dead_code)]

use sqlx::PgPool;

/// An artifact (a `manifests` row) written by [`artifact`].
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The artifact id.
    pub id: i64,
    pub repository_id: i64,
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: i64,
}

/// The config blob every seeded image shares: `{}`.
pub const CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The size of [`CONFIG_DIGEST`].
pub const CONFIG_SIZE: i64 = 2;

/// A fresh random `sha256:` digest.
pub fn digest() -> String {
    format!(
        "sha256:{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The repository `name` (created if missing; its project is the first path
/// segment); returns its id.
pub async fn repository(pool: &PgPool, name: &str) -> i64 {
    let project = name.split('/').next().unwrap();
    sqlx::query_scalar(
        "INSERT INTO repositories (name, project) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET updated_at = now() RETURNING id",
    )
    .bind(name)
    .bind(project)
    .fetch_one(pool)
    .await
    .expect("repository row")
}

/// A blob of `size` bytes (created if missing), linked to `repository_id`.
pub async fn blob(pool: &PgPool, repository_id: i64, digest: &str, size: i64) {
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(digest)
        .bind(size)
        .execute(pool)
        .await
        .expect("blob row");
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(repository_id)
    .bind(digest)
    .execute(pool)
    .await
    .expect("repository_blobs row");
}

/// An image manifest in `repository` (created if missing) with the shared
/// config ([`CONFIG_DIGEST`]) and the `layers` (digest, size) as blobs,
/// tagged with `tags`.
pub async fn artifact(
    pool: &PgPool,
    repository: &str,
    tags: &[&str],
    layers: &[(&str, i64)],
) -> Seeded {
    let repository_id = self::repository(pool, repository).await;
    let digest = digest();
    let content = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG_DIGEST}","size":{CONFIG_SIZE}}},"layers":[{}]}}"#,
        layers
            .iter()
            .map(|(d, s)| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{s}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    );
    blob(pool, repository_id, &digest, content.len() as i64).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO manifests (repository_id, digest, media_type, size, content, config_digest)
         VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', $3, $4, $5) RETURNING id",
    )
    .bind(repository_id)
    .bind(&digest)
    .bind(content.len() as i64)
    .bind(content.as_bytes())
    .bind(CONFIG_DIGEST)
    .fetch_one(pool)
    .await
    .expect("manifest row");
    blob(pool, repository_id, CONFIG_DIGEST, CONFIG_SIZE).await;
    reference(pool, id, CONFIG_DIGEST, "blob").await;
    for (layer, size) in layers {
        blob(pool, repository_id, layer, *size).await;
        reference(pool, id, layer, "blob").await;
    }
    for tag in tags {
        self::tag(pool, repository_id, tag, id).await;
    }
    Seeded {
        id,
        repository_id,
        digest,
        size: content.len() as i64,
    }
}

/// An image index in `repository` whose children are `children` (already
/// in the repository), tagged with `tags`.
pub async fn index(pool: &PgPool, repository: &str, tags: &[&str], children: &[&Seeded]) -> Seeded {
    let repository_id = self::repository(pool, repository).await;
    let digest = digest();
    let content = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        children
            .iter()
            .map(|c| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}"#,
                    c.digest, c.size
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    );
    blob(pool, repository_id, &digest, content.len() as i64).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO manifests (repository_id, digest, media_type, size, content)
         VALUES ($1, $2, 'application/vnd.oci.image.index.v1+json', $3, $4) RETURNING id",
    )
    .bind(repository_id)
    .bind(&digest)
    .bind(content.len() as i64)
    .bind(content.as_bytes())
    .fetch_one(pool)
    .await
    .expect("index row");
    for child in children {
        reference(pool, id, &child.digest, "manifest").await;
    }
    for tag in tags {
        self::tag(pool, repository_id, tag, id).await;
    }
    Seeded {
        id,
        repository_id,
        digest,
        size: content.len() as i64,
    }
}

async fn reference(pool: &PgPool, manifest_id: i64, digest: &str, kind: &str) {
    sqlx::query(
        "INSERT INTO manifest_references (manifest_id, digest, kind) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(manifest_id)
    .bind(digest)
    .bind(kind)
    .execute(pool)
    .await
    .expect("manifest_references row");
}

/// Point `tag` in the repository at `manifest_id`.
pub async fn tag(pool: &PgPool, repository_id: i64, tag: &str, manifest_id: i64) {
    sqlx::query(
        "INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = EXCLUDED.manifest_id",
    )
    .bind(repository_id)
    .bind(tag)
    .bind(manifest_id)
    .execute(pool)
    .await
    .expect("tag row");
}

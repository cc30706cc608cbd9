-- Registry core metadata: repositories, content-addressed blobs and which
-- repositories may serve them, resumable upload sessions, manifests with their
-- parsed facts, and tags.

CREATE TABLE repositories (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    project     TEXT COLLATE "C" NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX repositories_project ON repositories (project);

-- One row per distinct blob in the instance; the bytes live in the object store.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL CHECK (size >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A repository serves only the blobs linked to it (uploaded, mounted or pushed
-- as a manifest there).
CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs (digest),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs (digest);

-- An upload session; `state` is wharf-store's resumable UploadState. A PATCH
-- takes a lease so two requests never append to one session at once.
CREATE TABLE uploads (
    id            UUID PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    state         JSONB NOT NULL,
    lease_until   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX uploads_updated_at ON uploads (updated_at);

-- A manifest (image, index or artifact) in a repository. `content` keeps the
-- exact bytes pushed so a pull is one query; the same bytes are also a blob.
CREATE TABLE manifests (
    id             BIGSERIAL PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest         TEXT NOT NULL REFERENCES blobs (digest),
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    size           BIGINT NOT NULL,
    subject_digest TEXT,
    config_digest  TEXT,
    annotations    JSONB,
    content        BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests (repository_id, subject_digest)
    WHERE subject_digest IS NOT NULL;

-- What a manifest points at: blobs (config, layers) and child manifests (index).
CREATE TABLE manifest_references (
    manifest_id BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest_id, kind, digest)
);
CREATE INDEX manifest_references_digest ON manifest_references (digest);

CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    manifest_id   BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_manifest ON tags (manifest_id);

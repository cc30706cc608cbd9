-- Labels, as in Harbor: global ones (scope 'g', managed by system
-- administrators, attachable to any artifact) and project ones (scope 'p',
-- managed in one project, attachable only to that project's artifacts), and
-- which artifacts carry which labels. An artifact is a row of `manifests`.

CREATE TABLE labels (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description  TEXT NOT NULL DEFAULT '',
    color        TEXT NOT NULL DEFAULT '',
    scope        CHAR(1) NOT NULL CHECK (scope IN ('g', 'p')),
    -- NULL exactly for global labels. Projects are soft-deleted, so the
    -- labels of a deleted project stay behind, unreachable: every query
    -- joins live projects.
    project_id   BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((scope = 'g') = (project_id IS NULL))
);
-- A name is unique among global labels, and within each project.
CREATE UNIQUE INDEX labels_global_name ON labels (name) WHERE scope = 'g';
CREATE UNIQUE INDEX labels_project_name ON labels (project_id, name) WHERE scope = 'p';

-- Deleting a label detaches it everywhere; deleting an artifact drops its
-- attachments.
CREATE TABLE artifact_labels (
    manifest_id  BIGINT NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    label_id     BIGINT NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (manifest_id, label_id)
);
CREATE INDEX artifact_labels_label ON artifact_labels (label_id);

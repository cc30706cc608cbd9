-- Per-project storage quotas and tag immutability rules.
--
-- A project's usage counts each blob once however many of its manifests
-- reference it: `project_blobs` holds the blobs the project's manifests
-- reference (config, layers and each manifest's own bytes) and
-- `project_quotas.used` their total. Both change only inside the
-- transaction of the push or delete that causes the change, under a lock on
-- the project's quota row, so they stay exact under concurrent writers. The
-- hard limit stays in `projects.storage_limit` (-1 = unlimited).

CREATE TABLE project_quotas (
    -- Harbor's quota id (`/quotas/{id}`), distinct from the project's id.
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL UNIQUE REFERENCES projects (id) ON DELETE CASCADE,
    used        BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- No foreign key to `blobs`: garbage collection must never be blocked by
-- quota bookkeeping, and the repair job rebuilds these rows from manifests.
CREATE TABLE project_blobs (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, digest)
);

-- Every project has its quota row from the moment it exists, whichever code
-- path creates it, so admission always has a row to lock.
CREATE FUNCTION wharf_project_quota_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_quotas (project_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER projects_quota_row AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION wharf_project_quota_row();

-- Existing projects and what their manifests already reference.
INSERT INTO project_quotas (project_id) SELECT id FROM projects;
INSERT INTO project_blobs (project_id, digest, size)
SELECT p.id, x.digest, max(x.size)
  FROM projects p
  JOIN repositories r ON r.project = p.name
  JOIN LATERAL (
        SELECT m.digest, m.size FROM manifests m WHERE m.repository_id = r.id
        UNION ALL
        SELECT b.digest, b.size
          FROM manifests m
          JOIN manifest_references mr ON mr.manifest_id = m.id AND mr.kind = 'blob'
          JOIN blobs b ON b.digest = mr.digest
         WHERE m.repository_id = r.id
       ) AS x ON true
 WHERE NOT p.deleted
 GROUP BY p.id, x.digest;
UPDATE project_quotas q
   SET used = COALESCE((SELECT sum(size) FROM project_blobs pb WHERE pb.project_id = q.project_id), 0);

-- Tag immutability rules (Harbor's `immutabletagrules`): one repository and
-- one tag selector each, doublestar patterns. Decorations are stored in
-- Harbor's spelling: repoMatches/repoExcludes, matches/excludes.
CREATE TABLE immutable_tag_rules (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    priority         INT NOT NULL DEFAULT 0,
    disabled         BOOLEAN NOT NULL DEFAULT false,
    repo_decoration  TEXT NOT NULL CHECK (repo_decoration IN ('repoMatches', 'repoExcludes')),
    repo_pattern     TEXT NOT NULL,
    tag_decoration   TEXT NOT NULL CHECK (tag_decoration IN ('matches', 'excludes')),
    tag_pattern      TEXT NOT NULL,
    -- Harbor's free-form `params`, kept and echoed back.
    params           JSONB NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Also the index for loading a project's rules.
    CONSTRAINT immutable_tag_rules_unique
        UNIQUE (project_id, repo_decoration, repo_pattern, tag_decoration, tag_pattern)
);

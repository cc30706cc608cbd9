-- What the REST API shows about repositories, artifacts and tags beyond what
-- the registry core records: a repository's description and pull count, the
-- last pull of each artifact (manifest row) and tag, an id per tag, and a
-- cache of each artifact's extra attributes.
--
-- Pull times and counts are written in batches by the pull-event queue
-- (one statement per batch), never by the pull itself. Push times need no
-- column: a tag's is `tags.updated_at` (set whenever a push or the API
-- points it), an artifact's the later of `manifests.created_at` and its
-- tags' push times.

ALTER TABLE repositories
    ADD COLUMN description TEXT NOT NULL DEFAULT '',
    ADD COLUMN pull_count  BIGINT NOT NULL DEFAULT 0 CHECK (pull_count >= 0);

-- `extra_attrs` is derived from the artifact's config blob (architecture, os,
-- config of an image; Chart.yaml of a chart) the first time the API reads
-- it, so listings never read blobs twice. NULL means not derived yet.
ALTER TABLE manifests
    ADD COLUMN pull_time   TIMESTAMPTZ,
    ADD COLUMN extra_attrs JSONB;

-- Harbor's tags have ids; a moved tag keeps its id.
ALTER TABLE tags
    ADD COLUMN id        BIGSERIAL NOT NULL,
    ADD COLUMN pull_time TIMESTAMPTZ;
CREATE UNIQUE INDEX tags_id ON tags (id);

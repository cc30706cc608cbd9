-- Replication endpoints (Harbor's registries): other registries Wharf
-- copies to and from. The secret is sealed with AES-256-GCM under the
-- `[replication]` credential key, so a database dump alone does not reveal
-- it; the API never returns it.

CREATE TABLE replication_registries (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    type               TEXT NOT NULL CHECK (type IN ('docker-registry', 'harbor', 'wharf')),
    url                TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    access_key         TEXT,
    access_secret      TEXT,
    insecure           BOOLEAN NOT NULL DEFAULT false,
    -- 'healthy', 'unhealthy' or 'unknown' (never pinged), as Harbor shows it.
    status             TEXT NOT NULL DEFAULT 'unknown',
    status_message     TEXT NOT NULL DEFAULT '',
    status_checked_at  TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Replication policies (Harbor's shape, flattened): what to copy from which
-- registry to which, and how.
CREATE TABLE replication_policies (
    id                            BIGSERIAL PRIMARY KEY,
    name                          TEXT NOT NULL UNIQUE,
    description                   TEXT NOT NULL DEFAULT '',
    src_registry_id               BIGINT NOT NULL REFERENCES replication_registries (id),
    dest_registry_id              BIGINT NOT NULL REFERENCES replication_registries (id),
    dest_namespace                TEXT,
    dest_namespace_replace_count  INTEGER NOT NULL DEFAULT 0,
    name_filter                   TEXT,
    tag_filter                    TEXT,
    override                      BOOLEAN NOT NULL DEFAULT true,
    replicate_deletion            BOOLEAN NOT NULL DEFAULT false,
    speed_kb                      INTEGER,
    copy_by_chunk                 BOOLEAN NOT NULL DEFAULT false,
    enabled                       BOOLEAN NOT NULL DEFAULT true,
    created_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One artifact (repository:tag) of one execution (a job_executions row of
-- kind 'replication'). Planned once per execution, so a resumed execution
-- (a retry, or another worker after one died) skips what already succeeded.
CREATE TABLE replication_tasks (
    id            BIGSERIAL PRIMARY KEY,
    execution_id  BIGINT NOT NULL REFERENCES job_executions (id) ON DELETE CASCADE,
    src_resource  TEXT NOT NULL,
    dst_resource  TEXT NOT NULL,
    -- 'copy', or 'deletion' of a destination tag gone from the source
    -- (policies with replicate_deletion).
    operation     TEXT NOT NULL DEFAULT 'copy' CHECK (operation IN ('copy', 'deletion')),
    status        TEXT NOT NULL DEFAULT 'Pending'
                  CHECK (status IN ('Pending', 'Running', 'Succeed', 'Failed')),
    bytes_copied  BIGINT NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    CONSTRAINT replication_tasks_resource UNIQUE (execution_id, src_resource)
);

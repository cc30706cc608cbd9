-- Tag retention (Harbor's `/retentions`): one policy per project, and the
-- per-repository tasks of its runs. A run itself is a `job_executions` row
-- of kind 'retention' whose parameters name the policy; its schedule, when
-- it has one, is the `job_schedules` row 'retention:<policy id>'.

CREATE TABLE retention_policies (
    id          BIGSERIAL PRIMARY KEY,
    -- Harbor links a project to its policy through the project metadata
    -- `retention_id` (written with the policy); the UNIQUE makes "one per
    -- project" hold under concurrent creates.
    project_id  BIGINT NOT NULL UNIQUE REFERENCES projects (id) ON DELETE CASCADE,
    -- The rules as Harbor's JSON (validated on the way in, re-validated when
    -- read): templates, parameters and selectors.
    rules       JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Six-field cron of the schedule; NULL when the policy runs only by hand.
    cron        TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per repository a run looked at, with what it found and did. The
-- log lists every artifact of the repository with its verdict.
CREATE TABLE retention_tasks (
    id            BIGSERIAL PRIMARY KEY,
    execution_id  BIGINT NOT NULL REFERENCES job_executions (id) ON DELETE CASCADE,
    repository    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'Pending'
                  CHECK (status IN ('Pending', 'Running', 'Success', 'Error', 'Stopped')),
    -- Artifacts considered, and how many of them stay (kept by a rule,
    -- protected by an immutable tag, or not deleted because of an error).
    total         INT NOT NULL DEFAULT 0,
    retained      INT NOT NULL DEFAULT 0,
    log           TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    -- A resumed run (its worker died) finds its tasks again by repository.
    CONSTRAINT retention_tasks_unique UNIQUE (execution_id, repository)
);

-- A policy's run history is read by the policy id its executions carry.
CREATE INDEX job_executions_retention_policy
    ON job_executions ((parameters->>'policy_id'), id DESC)
    WHERE kind = 'retention';

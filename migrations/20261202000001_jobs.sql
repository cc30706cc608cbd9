-- Background jobs (crates/wharf-jobs). The queue itself lives in the
-- `graphile_worker` schema, which the graphile_worker crate installs and
-- upgrades on start-up; these two tables are Wharf's own.

-- One row per run of a job that people look at: a garbage collection, an
-- audit-log purge, a retention run... Harbor's execution histories
-- (/system/gc, /system/purgeaudit, retention executions) are read from here.
-- Jobs without a history (a webhook delivery, say) have no row.
CREATE TABLE job_executions (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    "trigger"   TEXT NOT NULL CHECK ("trigger" IN ('Manual', 'Schedule', 'Event')),
    status      TEXT NOT NULL DEFAULT 'Pending'
                CHECK (status IN ('Pending', 'Running', 'Success', 'Error', 'Stopping', 'Stopped')),
    parameters  JSONB NOT NULL DEFAULT '{}'::jsonb,
    result      JSONB,
    -- Appended to while the job runs, one timestamped line at a time.
    log         TEXT NOT NULL DEFAULT '',
    -- NULL for system-wide jobs (GC, purge); set for per-project ones
    -- (retention). No foreign key: the history outlives a deleted project.
    project_id  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX job_executions_kind ON job_executions (kind, id DESC);
CREATE INDEX job_executions_project ON job_executions (project_id, kind, id DESC)
    WHERE project_id IS NOT NULL;

-- Recurring jobs. Every replica's scheduler polls the due rows; the one whose
-- compare-and-set on next_run_at succeeds fires the tick, so each tick runs
-- once in the cluster.
CREATE TABLE job_schedules (
    name        TEXT PRIMARY KEY,
    -- Harbor's schedule objects have a number.
    id          BIGSERIAL NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    -- Six fields, as Harbor: second minute hour day-of-month month day-of-week.
    cron        TEXT NOT NULL,
    payload     JSONB NOT NULL DEFAULT '{}'::jsonb,
    next_run_at TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX job_schedules_due ON job_schedules (next_run_at);

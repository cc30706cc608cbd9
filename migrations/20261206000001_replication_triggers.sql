-- Replication policies as Harbor's REST API shapes them: one side may be
-- this Wharf (NULL: Harbor's registry 0, "Local"), a trigger (manual, a
-- cron schedule, or registry events), label and resource-type filters.

ALTER TABLE replication_policies
    ALTER COLUMN src_registry_id DROP NOT NULL,
    ALTER COLUMN dest_registry_id DROP NOT NULL,
    ADD CONSTRAINT replication_policies_one_remote
        CHECK (src_registry_id IS NOT NULL OR dest_registry_id IS NOT NULL),
    ADD COLUMN trigger_type TEXT NOT NULL DEFAULT 'manual'
        CHECK (trigger_type IN ('manual', 'scheduled', 'event_based')),
    -- Six-field cron (Harbor's), exactly for scheduled policies.
    ADD COLUMN trigger_cron TEXT,
    ADD CONSTRAINT replication_policies_cron
        CHECK ((trigger_type = 'scheduled') = (trigger_cron IS NOT NULL)),
    -- Label names an artifact must all carry / must carry none of (only
    -- meaningful when the source is this Wharf, whose labels they are).
    ADD COLUMN label_include TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN label_exclude TEXT[] NOT NULL DEFAULT '{}',
    -- 'image' keeps container images (and indexes of them) only;
    -- NULL or 'artifact' keeps every artifact.
    ADD COLUMN resource_filter TEXT CHECK (resource_filter IN ('image', 'artifact')),
    -- Harbor's name filter decoration: 'matches' or 'excludes'.
    ADD COLUMN name_decoration TEXT NOT NULL DEFAULT 'matches'
        CHECK (name_decoration IN ('matches', 'excludes')),
    ADD COLUMN tag_decoration TEXT NOT NULL DEFAULT 'matches'
        CHECK (tag_decoration IN ('matches', 'excludes'));

-- The event trigger looks up enabled event-based policies on every push.
CREATE INDEX replication_policies_event ON replication_policies (id)
    WHERE trigger_type = 'event_based' AND enabled;

-- An execution started by an event covers one resource, not the catalog:
-- the job reads it from the execution's parameters. Tasks keep what the
-- worker said about them for `.../tasks/{id}/log`.
ALTER TABLE replication_tasks
    ADD COLUMN log TEXT NOT NULL DEFAULT '',
    ADD COLUMN resource_type TEXT NOT NULL DEFAULT 'artifact';

-- Listing executions per policy (`?policy_id=`) reads the parameter.
CREATE INDEX job_executions_replication_policy
    ON job_executions (((parameters ->> 'policy_id')::bigint), id)
    WHERE kind = 'replication';

-- Proxy-cache projects (Harbor's pull-through cache): a project with a
-- `registry_id` mirrors that replication endpoint. The endpoint cannot be
-- deleted while a project uses it (Harbor answers 412 there).
ALTER TABLE projects
    ADD COLUMN registry_id BIGINT REFERENCES replication_registries (id) ON DELETE RESTRICT;
CREATE INDEX projects_registry ON projects (registry_id) WHERE registry_id IS NOT NULL;

-- When a cached tag was last compared with the upstream. NULL for every tag
-- pushed locally, so only cached tags are ever re-checked.
ALTER TABLE tags ADD COLUMN upstream_checked_at TIMESTAMPTZ;

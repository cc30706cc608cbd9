-- Users, projects, project metadata and project members: the data behind
-- Harbor-compatible projects and role-based access control.
--
-- Users and projects are soft-deleted (`deleted = true`), as in Harbor, so
-- audit history keeps pointing at real rows; uniqueness therefore applies to
-- live rows only, which frees a name for reuse once its owner is deleted.

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    username       TEXT COLLATE "C" NOT NULL,
    email          TEXT,
    realname       TEXT NOT NULL DEFAULT '',
    comment        TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL for users that cannot log in with a local password.
    password_hash  TEXT,
    sysadmin_flag  BOOLEAN NOT NULL DEFAULT false,
    deleted        BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_live ON users (username) WHERE NOT deleted;
CREATE UNIQUE INDEX users_email_live ON users (lower(email))
    WHERE NOT deleted AND email IS NOT NULL;

CREATE TABLE projects (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT COLLATE "C" NOT NULL,
    owner_id       BIGINT NOT NULL REFERENCES users (id),
    -- Storage quota in bytes; -1 means unlimited.
    storage_limit  BIGINT NOT NULL DEFAULT -1 CHECK (storage_limit >= -1),
    deleted        BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX projects_name_live ON projects (name) WHERE NOT deleted;
CREATE INDEX projects_owner ON projects (owner_id);

-- Harbor's per-project settings as string key/value pairs (`public`,
-- `auto_scan`, `prevent_vul`, `severity`, `reuse_sys_cve_allowlist`, ...).
CREATE TABLE project_metadata (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name)
);

-- Who holds which role in a project. `entity_type` is 'u' (user) today; 'g'
-- (group) is reserved for LDAP/OIDC groups, so `entity_id` has no foreign key.
-- Roles: 1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest.
CREATE TABLE project_members (
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    entity_id    BIGINT NOT NULL,
    entity_type  CHAR(1) NOT NULL CHECK (entity_type IN ('u', 'g')),
    role         SMALLINT NOT NULL CHECK (role BETWEEN 1 AND 5),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, entity_id, entity_type)
);
CREATE INDEX project_members_entity ON project_members (entity_type, entity_id);

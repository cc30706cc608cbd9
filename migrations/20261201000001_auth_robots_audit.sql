-- Authentication and accountability: member ids for Harbor's `{mid}`, robot
-- accounts and their permissions, the audit log, failed-login throttling, UI
-- sessions and the public halves of the token-signing keys.

-- Harbor addresses a membership by its own id (`/projects/{p}/members/{mid}`).
ALTER TABLE project_members ADD COLUMN id BIGSERIAL;
ALTER TABLE project_members ADD CONSTRAINT project_members_id UNIQUE (id);

-- Robot accounts, Harbor v2 model. `name` is stored without the login prefix:
-- `ci` for a system robot, `<project>+ci` for a project robot; the login name
-- is `<prefix><name>` (`robot$ci`, `robot$library+ci`).
CREATE TABLE robots (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    -- NULL for a system-level robot.
    project_id    BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    description   TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string of the secret; the secret itself is never stored.
    secret_hash   TEXT NOT NULL,
    -- Lifetime in days as requested; -1 means it never expires.
    duration_days BIGINT NOT NULL CHECK (duration_days = -1 OR duration_days > 0),
    -- NULL when it never expires.
    expires_at    TIMESTAMPTZ,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    -- Who created it: 'local' (a user id) or 'robot' (a robot id).
    creator_type  TEXT NOT NULL,
    creator_ref   BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX robots_project ON robots (project_id);

-- What a robot may do. `kind` 'system' grants a system resource (namespace
-- '/'); `kind` 'project' grants a project resource in one project
-- (`project_id`, `namespace` = its name) or in every project (`namespace` '*',
-- `project_id` NULL). Keeping the id means a project deleted and recreated
-- under the same name is not reachable with old grants.
CREATE TABLE robot_permissions (
    robot_id    BIGINT NOT NULL REFERENCES robots (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('system', 'project')),
    namespace   TEXT NOT NULL,
    project_id  BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    resource    TEXT NOT NULL,
    action      TEXT NOT NULL,
    position    INT NOT NULL
);
CREATE UNIQUE INDEX robot_permissions_unique
    ON robot_permissions (robot_id, kind, namespace, resource, action);

-- Who did what to which resource, when and from where. Written in the same
-- transaction as the change it describes; pulls are written in batches.
CREATE TABLE audit_logs (
    id                    BIGSERIAL PRIMARY KEY,
    -- NULL for system-level resources (users, system robots, logins).
    project_id            BIGINT,
    username              TEXT NOT NULL,
    operation             TEXT NOT NULL,
    operation_description TEXT NOT NULL DEFAULT '',
    operation_result      BOOLEAN NOT NULL DEFAULT true,
    resource_type         TEXT NOT NULL,
    resource              TEXT NOT NULL,
    client_addr           TEXT,
    op_time               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_op_time ON audit_logs (op_time);
CREATE INDEX audit_logs_project ON audit_logs (project_id, op_time);

-- Failed logins per username and per client address, shared by every
-- replica. A key with too many failures inside the window is locked until
-- `locked_until`.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     INT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ
);

-- Web console sessions. The cookie carries a random id; only its SHA-256 is
-- stored, so a database dump does not hand out live sessions.
CREATE TABLE sessions (
    id_hash      BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The public key of every replica's token-signing key, by `kid`, so a token
-- signed by one replica verifies on all of them. Private keys stay in each
-- replica's key file.
CREATE TABLE token_signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Webhooks (Harbor's notification policies): per-project policies that send
-- events to HTTP or Slack targets, and the log of every delivery and of each
-- of its attempts. Deliveries are written in the transaction of the change
-- they report (a push, a delete) together with the job that sends them, so a
-- rolled-back change sends nothing and a committed one is never lost.

CREATE TABLE webhook_policies (
    id           BIGSERIAL PRIMARY KEY,
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    -- [{type, address, auth_header, skip_cert_verify, payload_format}],
    -- validated on the way in.
    targets      JSONB NOT NULL,
    -- Harbor's event type names (PUSH_ARTIFACT, ...).
    event_types  TEXT[] NOT NULL,
    creator      TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_policies_name UNIQUE (project_id, name)
);

-- Every push and delete looks up the enabled policies of its project.
CREATE INDEX webhook_policies_enabled ON webhook_policies (project_id) WHERE enabled;

-- One event sent to one target of one policy (Harbor's webhook job, or
-- execution with its single task). The target is copied from the policy when
-- the event happens, so a retry goes where the first attempt went.
CREATE TABLE webhook_deliveries (
    id                BIGSERIAL PRIMARY KEY,
    policy_id         BIGINT NOT NULL REFERENCES webhook_policies (id) ON DELETE CASCADE,
    event_type        TEXT NOT NULL,
    -- Stable across retries: the CloudEvents `id` and the X-Wharf-Delivery
    -- header, so receivers can drop duplicates of an at-least-once delivery.
    event_id          UUID NOT NULL DEFAULT gen_random_uuid(),
    -- What happened (Harbor's payload without what is rendered per target).
    event             JSONB NOT NULL,
    notify_type       TEXT NOT NULL CHECK (notify_type IN ('http', 'slack')),
    payload_format    TEXT NOT NULL CHECK (payload_format IN ('Default', 'CloudEvents')),
    address           TEXT NOT NULL,
    auth_header       TEXT NOT NULL DEFAULT '',
    skip_cert_verify  BOOLEAN NOT NULL DEFAULT false,
    status            TEXT NOT NULL DEFAULT 'Pending'
                      CHECK (status IN ('Pending', 'Running', 'Success', 'Error', 'Stopped')),
    status_message    TEXT NOT NULL DEFAULT '',
    -- Attempts made so far, and the HTTP status of the last answer.
    attempts          INT NOT NULL DEFAULT 0,
    response_code     INT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);

CREATE INDEX webhook_deliveries_policy ON webhook_deliveries (policy_id, id DESC);

-- Each attempt of a delivery: when, and what the receiver answered (or why
-- it could not be reached).
CREATE TABLE webhook_attempts (
    delivery_id    BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt        INT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('Running', 'Success', 'Error')),
    response_code  INT,
    error          TEXT,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ,
    PRIMARY KEY (delivery_id, attempt)
);

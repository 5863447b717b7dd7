-- Webhooks (issue #11): owners' endpoints, the outbox of events, and their deliveries.
--
-- An endpoint's secret is never stored: secret_env names the environment variable of the
-- gateway processes that holds it.
CREATE TABLE owner_webhooks (
    owner_id   wg_id  NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    id         wg_id  NOT NULL,
    url        text   NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret_env text   NOT NULL CHECK (secret_env ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    -- NULL: every event type; otherwise only these.
    events     text[] NULL CHECK (events IS NULL OR cardinality(events) > 0),
    PRIMARY KEY (owner_id, id)
);

-- The outbox: each event is inserted in the same transaction as the change it reports,
-- so an event exists exactly when its change committed. No foreign key on the owner:
-- the log outlives an owner a later `policies apply` removes.
CREATE TABLE outbox_events (
    id         uuid        PRIMARY KEY,
    owner_id   text        NOT NULL,
    type       text        NOT NULL CHECK (type ~ '^[a-z]+(\.[a-z]+)*$'),
    payload    jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_events_owner_idx ON outbox_events (owner_id, created_at);

-- One row per event and endpoint, written with the event. The endpoint is looked up
-- when sending (by owner and webhook id), so a corrected URL applies to retries.
CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        uuid        NOT NULL REFERENCES outbox_events (id) ON DELETE CASCADE,
    owner_id        text        NOT NULL,
    webhook_id      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- For a pending row: when it is due. A claimed row's is pushed past the attempt's
    -- timeout (a lease), so a gateway that dies mid-attempt leaves it due again.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NULL,
    last_status     integer     NULL,
    last_error      text        NULL,
    delivered_at    timestamptz NULL,
    -- Who last put it back in the queue by hand (walletgate webhooks retry, the API).
    retried_by      text        NULL,
    retried_at      timestamptz NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, webhook_id),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_owner_idx ON webhook_deliveries (owner_id, created_at);

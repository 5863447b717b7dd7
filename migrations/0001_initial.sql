-- walletgate initial schema: the source of truth (SPEC §5).
-- Constraints make the database itself refuse nonsense; the application checks the
-- same things earlier to give better messages, but never relies on being the only guard.

CREATE DOMAIN wg_id AS text
    CHECK (VALUE ~ '^[a-z0-9][a-z0-9_.-]{0,62}$');

CREATE DOMAIN wg_address AS text
    CHECK (VALUE ~ '^0x[0-9a-f]{40}$');  -- canonical: lowercase only

-- One row: bumped by every apply, revoke and freeze. Caches compare against it.
CREATE TABLE state_version (
    id      smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version bigint   NOT NULL DEFAULT 1 CHECK (version >= 1)
);
INSERT INTO state_version (id, version) VALUES (1, 1);

CREATE TABLE owners (
    id         wg_id PRIMARY KEY,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id          wg_id PRIMARY KEY,
    owner_id    wg_id       NOT NULL REFERENCES owners (id) ON DELETE RESTRICT,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_owner_idx ON agents (owner_id);

CREATE TABLE wallets (
    id          wg_id PRIMARY KEY,
    owner_id    wg_id       NOT NULL REFERENCES owners (id) ON DELETE RESTRICT,
    agent_id    wg_id       NULL REFERENCES agents (id) ON DELETE RESTRICT,
    address     wg_address  NOT NULL,
    chain_id    bigint      NOT NULL CHECK (chain_id > 0),
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain_id, address)
);
CREATE INDEX wallets_agent_idx ON wallets (agent_id);
CREATE INDEX wallets_owner_idx ON wallets (owner_id);

CREATE TABLE assets (
    id            wg_id PRIMARY KEY,
    chain_id      bigint      NOT NULL CHECK (chain_id > 0),
    address       wg_address  NULL,  -- NULL: the chain's native coin
    symbol        text        NOT NULL CHECK (length(symbol) BETWEEN 1 AND 32),
    decimals      smallint    NOT NULL CHECK (decimals BETWEEN 0 AND 77),
    price_usd     numeric     NULL CHECK (price_usd >= 0),
    price_as_of   timestamptz NULL,
    price_max_age interval    NULL CHECK (price_max_age > interval '0'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((price_usd IS NULL) = (price_as_of IS NULL)),
    UNIQUE NULLS NOT DISTINCT (chain_id, address)
);

CREATE TABLE policies (
    id          wg_id PRIMARY KEY,
    -- exactly one scope: the owner, agent or wallet the policy is attached to
    owner_id    wg_id       NULL REFERENCES owners (id) ON DELETE RESTRICT,
    agent_id    wg_id       NULL REFERENCES agents (id) ON DELETE RESTRICT,
    wallet_id   wg_id       NULL REFERENCES wallets (id) ON DELETE RESTRICT,
    description text        NOT NULL DEFAULT '',
    enabled     boolean     NOT NULL DEFAULT true,
    rules       jsonb       NOT NULL CHECK (jsonb_typeof(rules) = 'array'),
    version     integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL DEFAULT '',
    CHECK (num_nonnulls(owner_id, agent_id, wallet_id) = 1)
);

-- Who changed which policy, when, from what to what. No foreign key: history outlives
-- the policy it describes.
CREATE TABLE policy_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_set uuid        NOT NULL,
    policy_id  text        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    action     text        NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    before     jsonb       NULL,
    after      jsonb       NULL,
    changed_by text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((action = 'create') = (before IS NULL)),
    CHECK ((action = 'delete') = (after IS NULL))
);
CREATE INDEX policy_history_policy_idx ON policy_history (policy_id, changed_at);

CREATE TABLE agent_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id     wg_id       NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    prefix       text        NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT '',
    last_used_at timestamptz NULL,
    revoked_at   timestamptz NULL,
    revoked_by   text        NULL,
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX agent_tokens_agent_idx ON agent_tokens (agent_id);

-- The audit log. A spend's row is written (durably) before it is forwarded, then
-- updated with the outcome. Denied and malformed spending requests are logged too.
CREATE TABLE transactions (
    id            uuid PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    agent_id      wg_id       NULL REFERENCES agents (id) ON DELETE RESTRICT,
    wallet_id     wg_id       NULL REFERENCES wallets (id) ON DELETE RESTRICT,
    owner_id      wg_id       NULL REFERENCES owners (id) ON DELETE RESTRICT,
    chain_id      bigint      NULL CHECK (chain_id > 0),
    backend       text        NOT NULL DEFAULT 'default',
    method        text        NOT NULL,
    request       jsonb       NOT NULL,
    intents       jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(intents) = 'array'),
    decision      text        NOT NULL CHECK (decision IN ('allow', 'deny', 'hold', 'error')),
    reason        text        NOT NULL,
    explanation   jsonb       NOT NULL DEFAULT '{}',
    -- pending: forwarded or about to be, outcome not yet recorded
    -- committed: the backend accepted it; refunded: the backend refused it (definite)
    -- unknown: timeout or reset, may have been broadcast: keeps counting until reconciled
    -- denied: never forwarded; held: waiting for owner approval
    status        text        NOT NULL CHECK (status IN
                    ('denied', 'held', 'pending', 'committed', 'refunded', 'unknown')),
    -- asset id -> base units (as decimal strings), what this request moves or approves
    amounts       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(amounts) = 'object'),
    usd_value     numeric     NULL CHECK (usd_value >= 0),
    tx_hash       text        NULL CHECK (tx_hash IS NULL OR tx_hash ~ '^0x[0-9a-f]{64}$'),
    backend_error jsonb       NULL,
    -- the counter reservations taken for this request, so they can be settled or rebuilt
    claims        jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(claims) = 'array'),
    timings       jsonb       NOT NULL DEFAULT '{}',
    settled_at    timestamptz NULL,
    CHECK ((decision = 'allow') = (status IN ('pending', 'committed', 'refunded', 'unknown'))),
    CHECK ((status = 'held') = (decision = 'hold'))
);
-- Per-wallet / per-agent time-window sums (counter rebuild) touch only live statuses.
CREATE INDEX transactions_wallet_window_idx ON transactions (wallet_id, created_at)
    WHERE status IN ('pending', 'committed', 'unknown');
CREATE INDEX transactions_agent_window_idx ON transactions (agent_id, created_at)
    WHERE status IN ('pending', 'committed', 'unknown');
CREATE INDEX transactions_owner_window_idx ON transactions (owner_id, created_at)
    WHERE status IN ('pending', 'committed', 'unknown');
CREATE INDEX transactions_created_idx ON transactions (created_at);
CREATE INDEX transactions_unknown_idx ON transactions (created_at) WHERE status = 'unknown';

CREATE TABLE approvals (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    transaction_id uuid        NOT NULL UNIQUE REFERENCES transactions (id) ON DELETE CASCADE,
    status         text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NULL,
    decided_at     timestamptz NULL,
    decided_by     text        NULL,
    note           text        NOT NULL DEFAULT '',
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX approvals_pending_idx ON approvals (requested_at) WHERE status = 'pending';

-- Admin keys: bearer secrets for the admin HTTP API, stored hashed like agent tokens
-- (SHA-256 of a 256-bit random secret, plus a short clear prefix to tell keys apart).
-- An 'operator' key may do everything; an 'owner' key only sees and acts on its
-- owner's agents, wallets, transactions and approvals. Revoking closes a key; rows are
-- kept as the record of who issued and revoked which key.
CREATE TABLE admin_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    prefix       text        NOT NULL CHECK (length(prefix) BETWEEN 4 AND 24),
    scope        text        NOT NULL CHECK (scope IN ('operator', 'owner')),
    -- An owner's keys go with the owner when a policy apply removes it.
    owner_id     wg_id       NULL REFERENCES owners (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    last_used_at timestamptz NULL,
    revoked_at   timestamptz NULL,
    revoked_by   text        NULL,
    CHECK ((scope = 'owner') = (owner_id IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX admin_keys_owner_idx ON admin_keys (owner_id);

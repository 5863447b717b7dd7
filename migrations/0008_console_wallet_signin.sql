-- Signing in to the owner console with the owner's approver address (issue #12): a
-- one-time EIP-4361 (SIWE) challenge, kept server-side with a short expiry and used once,
-- and a session that acts for the owner instead of for an admin key.
CREATE TABLE console_challenges (
    nonce      text        PRIMARY KEY CHECK (nonce ~ '^[0-9a-f]{32}$'),
    owner_id   wg_id       NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    address    text        NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    message    text        NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NULL
);
CREATE INDEX console_challenges_expires_idx ON console_challenges (expires_at);

-- A session opened by signature has no admin key: it names the owner and the approver
-- address that signed; it dies when that address is no longer the owner's approver.
ALTER TABLE console_sessions
    ALTER COLUMN admin_key_id DROP NOT NULL,
    ADD COLUMN owner_id wg_id NULL REFERENCES owners (id) ON DELETE CASCADE,
    ADD COLUMN approver text NULL CHECK (approver ~ '^0x[0-9a-f]{40}$'),
    ADD CONSTRAINT console_sessions_one_holder CHECK (
        (admin_key_id IS NOT NULL AND owner_id IS NULL AND approver IS NULL)
        OR (admin_key_id IS NULL AND owner_id IS NOT NULL AND approver IS NOT NULL));

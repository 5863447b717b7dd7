-- Console sessions (issue #12): a person signed in to the owner console with an admin key.
-- Only the SHA-256 of the session secret is kept; the CSRF token is bound to the session.
-- A session dies with its expiry, its sign-out, or the revocation of its admin key.
CREATE TABLE console_sessions (
    id_hash      bytea       PRIMARY KEY,
    admin_key_id uuid        NOT NULL REFERENCES admin_keys (id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

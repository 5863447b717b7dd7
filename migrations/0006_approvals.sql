-- Approvals (issue #11): held spends an owner approves, delays that run by themselves.
--
-- A held spend's transactions row now moves on: 'held' (its claims reserved, like a
-- 'pending' row) -> 'pending' (being forwarded) -> 'committed' | 'refunded' | 'unknown',
-- or 'held' -> 'refunded' when it is rejected, cancelled or expires (never forwarded).
-- Its decision stays 'hold': what was judged does not change.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
         WHERE conrelid = 'transactions'::regclass AND contype = 'c'
           AND pg_get_constraintdef(oid) LIKE '%decision%'
           AND pg_get_constraintdef(oid) LIKE '%status%'
    LOOP
        EXECUTE format('ALTER TABLE transactions DROP CONSTRAINT %I', name);
    END LOOP;
    FOR name IN
        SELECT conname FROM pg_constraint
         WHERE conrelid = 'approvals'::regclass AND contype = 'c'
           AND pg_get_constraintdef(oid) LIKE '%status%'
    LOOP
        EXECUTE format('ALTER TABLE approvals DROP CONSTRAINT %I', name);
    END LOOP;
END
$$;

ALTER TABLE transactions
    ADD CONSTRAINT transactions_denied_check
        CHECK ((decision IN ('deny', 'error')) = (status = 'denied')),
    ADD CONSTRAINT transactions_held_check CHECK (status <> 'held' OR decision = 'hold');

-- Held rows carry claims too: the window indexes cover them (counter rebuilds).
DROP INDEX transactions_wallet_window_idx;
DROP INDEX transactions_agent_window_idx;
DROP INDEX transactions_owner_window_idx;
CREATE INDEX transactions_wallet_window_idx ON transactions (wallet_id, created_at)
    WHERE status IN ('held', 'pending', 'committed', 'unknown');
CREATE INDEX transactions_agent_window_idx ON transactions (agent_id, created_at)
    WHERE status IN ('held', 'pending', 'committed', 'unknown');
CREATE INDEX transactions_owner_window_idx ON transactions (owner_id, created_at)
    WHERE status IN ('held', 'pending', 'committed', 'unknown');

-- pending -> approved | rejected | expired | cancelled; approved -> executing (claimed by
-- one gateway, in the transaction that moves it) -> executed | failed | unknown.
-- 'unknown': the backend's answer was lost, or a gateway died while forwarding it; the
-- transaction row is settled by reconcile / tx settle.
ALTER TABLE approvals
    ADD COLUMN kind         text        NOT NULL DEFAULT 'approval'
                              CHECK (kind IN ('approval', 'delay')),
    ADD COLUMN release_at   timestamptz NULL,
    -- sha256 of the canonical method, params, agent and chain: resends find the hold.
    ADD COLUMN fingerprint  text        NULL CHECK (fingerprint ~ '^0x[0-9a-f]{64}$'),
    ADD COLUMN claimed_at   timestamptz NULL,
    ADD COLUMN finished_at  timestamptz NULL,
    -- the backend's JSON-RPC result of an executed approval (a tx hash, a signature)
    ADD COLUMN result       jsonb       NULL,
    -- when a rejected, cancelled or expired hold's reservation was given back
    ADD COLUMN refunded_at  timestamptz NULL,
    ADD CONSTRAINT approvals_status_check CHECK (status IN (
        'pending', 'approved', 'rejected', 'expired', 'cancelled',
        'executing', 'executed', 'failed', 'unknown')),
    ADD CONSTRAINT approvals_decided_check CHECK ((status = 'pending') = (decided_at IS NULL)),
    ADD CONSTRAINT approvals_delay_check CHECK ((kind = 'delay') = (release_at IS NOT NULL));
UPDATE approvals SET expires_at = requested_at + interval '24 hours' WHERE expires_at IS NULL;
ALTER TABLE approvals ALTER COLUMN expires_at SET NOT NULL,
                      ALTER COLUMN expires_at SET DEFAULT now() + interval '24 hours';

CREATE INDEX approvals_fingerprint_idx ON approvals (fingerprint) WHERE fingerprint IS NOT NULL;
CREATE INDEX approvals_expiry_idx ON approvals (expires_at) WHERE status = 'pending';
CREATE INDEX approvals_work_idx ON approvals (decided_at) WHERE status IN ('approved', 'executing');
CREATE INDEX approvals_refund_idx ON approvals (decided_at)
    WHERE status IN ('rejected', 'expired', 'cancelled') AND refunded_at IS NULL;

-- Every transition: who, when, why.
CREATE TABLE approval_transitions (
    id          bigserial   PRIMARY KEY,
    approval_id uuid        NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    from_status text        NULL,
    to_status   text        NOT NULL,
    actor       text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    detail      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_transitions_approval_idx ON approval_transitions (approval_id, id);

-- An owner's approver: approving that owner's holds needs an EIP-712 signature by it.
-- Set with `walletgate approvals approver set` (never through the admin API, so that a
-- leaked admin key cannot replace it).
CREATE TABLE owner_approvers (
    owner_id wg_id       PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    address  text        NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    set_by   text        NOT NULL,
    set_at   timestamptz NOT NULL DEFAULT now()
);

-- Each approval signature is accepted once.
CREATE TABLE approval_signatures (
    signature_hash text        PRIMARY KEY,
    approval_id    uuid        NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    signer         text        NOT NULL,
    used_at        timestamptz NOT NULL DEFAULT now()
);

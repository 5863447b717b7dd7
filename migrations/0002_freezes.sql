-- The kill switch: a freeze stops every spend of an agent, a wallet or everyone.
-- Rows are never deleted: unfreezing closes a freeze, so this table is also the log of
-- who froze what, why and when, and who lifted it. Targets are not foreign keys, so
-- the log outlives an agent or wallet a later `policies apply` removes.
CREATE TABLE freezes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope           text        NOT NULL CHECK (scope IN ('all', 'agent', 'wallet')),
    target          text        NULL,
    reason          text        NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    frozen_by       text        NOT NULL,
    frozen_at       timestamptz NOT NULL DEFAULT now(),
    unfrozen_by     text        NULL,
    unfrozen_at     timestamptz NULL,
    unfreeze_reason text        NULL,
    CHECK ((scope = 'all') = (target IS NULL)),
    CHECK ((unfrozen_at IS NULL) = (unfrozen_by IS NULL)),
    CHECK (unfrozen_at IS NULL OR unfrozen_at >= frozen_at)
);
-- At most one active freeze per target; the gateways load the active ones.
CREATE UNIQUE INDEX freezes_active_idx ON freezes (scope, coalesce(target, ''))
    WHERE unfrozen_at IS NULL;

"""Who is acting: the name operator actions are audited with."""

from __future__ import annotations

import getpass

from walletgate.config.settings import Settings


def actor_of(settings: Settings) -> str:
    """Who is acting (``created_by``, ``revoked_by``, ``frozen_by``, ``settled_by``): the
    ``actor`` setting (``WALLETGATE_ACTOR``), else the OS user."""
    if settings.actor:
        return settings.actor
    try:
        return getpass.getuser()
    except OSError:  # no user name in a bare container
        return "unknown"

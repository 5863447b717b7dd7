"""Runtime settings: environment variables over an optional YAML config file over defaults.

Every setting has one name. In the environment it is ``WALLETGATE_`` + the upper-case
name (``WALLETGATE_DATABASE_URL``); in the config file (``--config`` or
``WALLETGATE_CONFIG``) it is the lower-case key. With no database and no Redis URL,
walletgate starts embedded servers in ``data_dir`` (SPEC §7).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Backend:
    """A wallet backend: where requests go, the chain it serves, headers to inject."""

    name: str
    url: str
    chain_id: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".walletgate")
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8545
    backend_url: str | None = None  # the default backend, served at "/"
    chain_id: int | None = None
    backends: tuple[Backend, ...] = ()  # named backends at /rpc/{name}
    policy_cache_ttl: int = 300
    token_cache_ttl: int = 900
    # How long a gateway may trust the policies and tokens in its memory without a
    # Redis trip per request (walletgate.storage.leases); apply, revoke and freeze wait
    # at most this long for a paused or dead gateway.
    state_lease_ms: int = 500
    balance_cache_ttl: int = 10
    # How long a gateway answers eth_getBalance from its own copy of a cached balance
    # (walletgate.storage.near_balances); 0 turns the copies off.
    balance_near_cache_ms: int = 1000
    max_body_bytes: int = 1_048_576
    # A client that sends its request slower than this is cut off, so slow clients
    # (slowloris) cannot hold connections: headers must arrive within keepalive_timeout
    # of connecting (aiohttp's idle timer), a body within request_read_timeout.
    keepalive_timeout: float = 15.0
    request_read_timeout: float = 15.0
    backend_timeout: float = 30.0
    backend_connect_timeout: float = 5.0
    backend_pool_size: int = 100
    redis_timeout: float = 0.5
    # Opening a Redis connection may take longer than a command: a burst right after
    # start opens many at once, and refusing spends because a connect took 0.6 s is an
    # availability bug, not fail-closed prudence (commands keep redis_timeout).
    redis_connect_timeout: float = 3.0
    # Connections each process opens before it accepts traffic: a burst right after
    # start then finds them open. With 8, a 200-spend burst on three cold workers still
    # opened ~60 per worker at once, and the CPU that took delayed other requests' Redis
    # answers past redis_timeout; 64 absorbed it (tests/test_serve_startup.py).
    redis_warm_connections: int = 64
    database_timeout: float = 5.0
    reads_fail_open: bool = False
    # One line per HTTP request on stderr (tokens redacted). Off saves its cost per
    # request (a few percent of a read's CPU) where a load balancer logs requests anyway.
    access_log: bool = True
    audit_batch_max: int = 256
    actor: str = ""
    # The admin HTTP API (walletgate.admin): its own listener, on loopback unless told
    # otherwise; admin_port 0 turns it off. Every gateway process listens on it with
    # SO_REUSEPORT, as on the main port (docs/operations.md).
    admin_host: str = "127.0.0.1"
    admin_port: int = 8550
    # Webhook delivery (walletgate.notify.delivery): how often each gateway looks for due
    # deliveries, how long one POST may take, and the retry schedule (exponential from
    # base, capped, with jitter) before a delivery is marked failed.
    webhook_poll_interval: float = 1.0
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff_base: float = 10.0
    webhook_backoff_max: float = 3600.0
    # Approvals (walletgate.proxy.executor): how often each gateway releases due delays,
    # expires and refunds holds and claims approved ones; and how long a claimed
    # approval may stay 'executing' before it is taken for a dead gateway's ('unknown').
    # The lease must exceed the longest forward (backend timeout).
    approval_poll_interval: float = 0.5
    approval_lease: float = 300.0
    # The owner console (walletgate.console) on the admin listener: how long a sign-in
    # lasts, and whether its cookie is marked Secure (set it behind TLS).
    console_session_minutes: int = 30
    console_secure_cookies: bool = False

    @property
    def embedded(self) -> bool:
        """True when walletgate must start its own PostgreSQL and Valkey."""
        return self.database_url is None and self.redis_url is None

    def all_backends(self) -> tuple[Backend, ...]:
        """The default backend (named ``default``) followed by the named ones."""
        out = []
        if self.backend_url is not None:
            if self.chain_id is None:
                raise SettingsError("backend_url is set but chain_id is not (WALLETGATE_CHAIN_ID)")
            out.append(Backend("default", self.backend_url, self.chain_id))
        return (*out, *self.backends)


_INT_FIELDS = {f.name for f in fields(Settings) if f.type in ("int", "int | None")}
_FLOAT_FIELDS = {f.name for f in fields(Settings) if f.type == "float"}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type == "bool"}


def _coerce(name: str, raw: Any) -> Any:
    try:
        if name in _INT_FIELDS:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if name in _FLOAT_FIELDS:
            return float(raw)
        if name in _BOOL_FIELDS:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if name == "data_dir":
            return Path(str(raw))
    except ValueError:
        raise SettingsError(f"setting {name!r}: cannot read {raw!r}") from None
    return str(raw)


def _backends_from(raw: Any, source: str) -> tuple[Backend, ...]:
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{source}: 'backends' must be a mapping of name to backend")
    out = []
    for name, spec in raw.items():
        if not isinstance(spec, Mapping) or "url" not in spec or "chain_id" not in spec:
            raise SettingsError(f"{source}: backends.{name} needs 'url' and 'chain_id'")
        headers = spec.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise SettingsError(f"{source}: backends.{name}.headers must be a mapping")
        try:
            chain_id = int(spec["chain_id"])
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: backends.{name}.chain_id must be an integer") from None
        out.append(
            Backend(
                str(name), str(spec["url"]), chain_id, {str(k): str(v) for k, v in headers.items()}
            )
        )
    return tuple(out)


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, then the config file, then the environment, then
    ``overrides`` (command-line flags). Unknown config keys are an error, not ignored."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    names = {f.name for f in fields(Settings)}
    path = config_file or env.get("WALLETGATE_CONFIG")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                document = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise SettingsError(f"config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"config file {path}: invalid YAML: {exc}") from None
        if not isinstance(document, Mapping):
            raise SettingsError(f"config file {path}: expected a mapping at the top level")
        for key, raw in document.items():
            if key == "backends":
                values["backends"] = _backends_from(raw, str(path))
            elif key in names:
                values[key] = _coerce(key, raw)
            else:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
    for name in names - {"backends"}:
        raw_env = env.get(f"WALLETGATE_{name.upper()}")
        if raw_env is not None and raw_env != "":
            values[name] = _coerce(name, raw_env)
    for key, raw in overrides.items():
        if raw is not None:
            values[key] = raw if key == "backends" else _coerce(key, raw)
    return _checked(replace(Settings(), **values))


def _checked(settings: Settings) -> Settings:
    """``settings``, or a clear error for a value walletgate cannot run with."""
    # The bounds of walletgate.storage.leases (kept here: settings import nothing).
    if not 200 <= settings.state_lease_ms <= 60_000:
        raise SettingsError(
            f"setting 'state_lease_ms': {settings.state_lease_ms} is out of range "
            "(200 to 60000 milliseconds)"
        )
    if settings.balance_near_cache_ms < 0:
        raise SettingsError("setting 'balance_near_cache_ms' must be 0 (off) or more")
    return settings

"""Prometheus metrics of one gateway process (its own registry, so tests can run many)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _RememberedLabels:
    """``labels()`` that remembers the child it returned for the same label values.

    The request path calls ``labels(...)`` on every request with values from a small
    fixed set (method classes, decisions, reasons); prometheus_client checks the names,
    converts every value with ``str()`` and takes a lock each time. The first call per
    value set still goes through all of that; later ones are one dict lookup. Values must
    be hashable and keep their ``str()`` (strings, enums, numbers); others are passed on
    uncached. ``remove``/``clear`` forget what they drop.
    """

    _children: dict[Any, Any]

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        children = self.__dict__.get("_children")
        if children is None:
            children = self.__dict__["_children"] = {}
        key = (labelvalues, tuple(labelkwargs.items()))
        try:
            return children[key]
        except KeyError:
            child = super().labels(*labelvalues, **labelkwargs)  # type: ignore[misc]
            children[key] = child
            return child
        except TypeError:  # an unhashable value: nothing to remember it by
            return super().labels(*labelvalues, **labelkwargs)  # type: ignore[misc]

    def remove(self, *labelvalues: Any) -> None:
        self.__dict__.pop("_children", None)
        super().remove(*labelvalues)  # type: ignore[misc]

    def clear(self) -> None:
        self.__dict__.pop("_children", None)
        super().clear()  # type: ignore[misc]


class Counter(_RememberedLabels, _Counter):
    """A prometheus Counter whose ``labels()`` is cheap after the first call."""


class Histogram(_RememberedLabels, _Histogram):
    """A prometheus Histogram whose ``labels()`` is cheap after the first call."""


class Gauge(_RememberedLabels, _Gauge):
    """A prometheus Gauge whose ``labels()`` is cheap after the first call."""


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    decisions: Counter
    http_latency: Histogram
    spend_latency: Histogram
    backend_latency: Histogram
    backend_errors: Counter
    balance_cache: Counter
    auth_failures: Counter
    audit_backlog: Gauge
    state_lease_valid: Gauge
    state_lease_renewals: Counter

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return bytes(generate_latest(self.registry))


def new_metrics() -> Metrics:
    """A fresh set of metrics in a private registry."""
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter(
            "walletgate_calls",
            "JSON-RPC calls received, by method class",
            ["method_class"],
            registry=registry,
        ),
        decisions=Counter(
            "walletgate_decisions",
            "Decisions on spending and signing calls",
            ["decision", "reason"],
            registry=registry,
        ),
        http_latency=Histogram(
            "walletgate_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        spend_latency=Histogram(
            "walletgate_spend_seconds",
            "Time from receipt to settlement of a forwarded spend",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        backend_latency=Histogram(
            "walletgate_backend_seconds",
            "Backend round-trip time",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        backend_errors=Counter(
            "walletgate_backend_errors",
            "Backend errors and unknown outcomes",
            ["backend", "kind"],
            registry=registry,
        ),
        balance_cache=Counter(
            "walletgate_balance_cache",
            "eth_getBalance cache lookups",
            ["result"],
            registry=registry,
        ),
        auth_failures=Counter(
            "walletgate_auth_failures",
            "Requests with a missing or unknown token",
            ["kind"],
            registry=registry,
        ),
        audit_backlog=Gauge(
            "walletgate_audit_backlog",
            "Audit rows and updates waiting to be written",
            registry=registry,
        ),
        state_lease_valid=Gauge(
            "walletgate_state_lease_valid",
            "1 while this process's state lease holds (reads are served from memory)",
            registry=registry,
        ),
        state_lease_renewals=Counter(
            "walletgate_state_lease_renewals",
            "State lease renewals: extended, moved (a newer state was installed first) "
            "or failed (Redis or PostgreSQL did not answer)",
            ["result"],
            registry=registry,
        ),
    )

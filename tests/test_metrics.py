"""Metrics: ``labels()`` remembers its children without changing what is exported."""

from __future__ import annotations

from walletgate.proxy.metrics import new_metrics


def _samples(text: bytes, name: str) -> list[str]:
    return [line for line in text.decode().splitlines() if line.startswith(name)]


def test_labels_returns_the_same_child_however_it_is_asked() -> None:
    metrics = new_metrics()
    child = metrics.decisions.labels(decision="deny", reason="per_tx_cap_exceeded")
    assert metrics.decisions.labels(decision="deny", reason="per_tx_cap_exceeded") is child
    assert metrics.decisions.labels(reason="per_tx_cap_exceeded", decision="deny") is child
    assert metrics.decisions.labels("deny", "per_tx_cap_exceeded") is child
    child.inc()
    metrics.decisions.labels(decision="deny", reason="per_tx_cap_exceeded").inc()
    samples = _samples(metrics.render(), "walletgate_decisions_total")
    assert samples == [
        'walletgate_decisions_total{decision="deny",reason="per_tx_cap_exceeded"} 2.0'
    ]


def test_cleared_and_removed_children_are_not_reused() -> None:
    metrics = new_metrics()
    metrics.requests.labels(method_class="read").inc(5)
    metrics.requests.clear()
    metrics.requests.labels(method_class="read").inc()
    assert _samples(metrics.render(), "walletgate_calls_total") == [
        'walletgate_calls_total{method_class="read"} 1.0'
    ]
    metrics.requests.remove("read")
    metrics.requests.labels(method_class="read").inc(2)
    assert _samples(metrics.render(), "walletgate_calls_total") == [
        'walletgate_calls_total{method_class="read"} 2.0'
    ]


def test_histogram_children_are_remembered_too() -> None:
    metrics = new_metrics()
    child = metrics.http_latency.labels(route="rpc")
    assert metrics.http_latency.labels(route="rpc") is child
    child.observe(0.003)
    samples = _samples(metrics.render(), "walletgate_http_request_seconds_count")
    assert samples == ['walletgate_http_request_seconds_count{route="rpc"} 1.0']

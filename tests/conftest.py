"""Test configuration: the shared fixtures live in tests/support (real servers, the devnet)."""

pytest_plugins = [
    "tests.support.servers",
    "tests.support.devnet",
    "tests.support.gateway",
    "tests.support.cluster",
]

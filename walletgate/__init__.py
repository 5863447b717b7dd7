"""walletgate: a policy-enforcing reverse proxy between AI agents and their wallet backend."""

__version__ = "0.1.0"

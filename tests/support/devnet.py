"""The ``devnet`` fixture: a running ``walletgate devnet`` server (written by the devnet work)."""

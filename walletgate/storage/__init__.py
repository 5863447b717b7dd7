"""walletgate."""

"""Request-rate limiting with quota leased from Redis in blocks (issue #13)."""

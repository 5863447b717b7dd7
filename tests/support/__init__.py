"""Shared pytest fixtures: real servers, the devnet."""

"""The owner console: server-rendered pages on the admin listener (docs/console.md)."""

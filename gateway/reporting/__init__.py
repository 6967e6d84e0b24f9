"""Reporting: engine output written to a database (SQLite or PostgreSQL) off the engine's
path, and the history, statements and reconciliation served from it (``docs/reporting.md``)."""

"""Tests against the real PostgreSQL server."""

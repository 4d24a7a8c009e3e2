"""Shared pytest wiring: fixtures live in ``tests/fixtures`` and are loaded as plugins."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.private_postgres",
    "tests.fixtures.testbed",
    "tests.fixtures.daemon",
    "tests.fixtures.acd",
]

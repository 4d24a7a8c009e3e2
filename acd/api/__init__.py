"""The HTTP API inside the daemon (``/api/v1``): live view, agent state, reports, flows,
accounts and the audit trail. ``acd.api.app.build_app`` assembles it."""

"""The API's resources; importing this package registers every endpoint."""

from acd.api.resources import agents, flows, live, queues, reports, session, users

__all__ = ["agents", "flows", "live", "queues", "reports", "session", "users"]

"""The database layer: engines, sessions and the tables every consumer shares."""

from leadflow.db.engine import create_engine, session_factory
from leadflow.db.tables import metadata, outbox, processed_events

__all__ = ["create_engine", "metadata", "outbox", "processed_events", "session_factory"]

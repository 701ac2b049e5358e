"""Closed-loop reporting: a lifecycle per lead from the event streams, and reports on it."""

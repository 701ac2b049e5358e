"""Leadflow's common library: events, configuration, bus, database and metrics.

The services build on it; it never imports a service (the `leadflow` command, which
spans them, is `leadflow_cli`)."""

__version__ = "0.1.0"

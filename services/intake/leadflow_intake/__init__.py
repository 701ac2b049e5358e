"""Leadflow's intake service."""

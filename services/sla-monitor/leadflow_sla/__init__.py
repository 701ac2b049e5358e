"""Leadflow's SLA monitor service."""

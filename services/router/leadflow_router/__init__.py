"""Leadflow's router service."""

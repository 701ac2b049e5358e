"""Leadflow's scoring service."""

"""Reporting's tables: one lifecycle row per person (under their current key), and run-time
costs per lead."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, false

from leadflow.db.tables import UtcDateTime, metadata

lead_lifecycles = Table(
    "lead_lifecycles",
    metadata,
    Column("lead_key", String(64), primary_key=True),
    # Touches (lead.received): first and last by arrival time.
    Column("touches", Integer, nullable=False, default=0),
    Column("first_touch_at", UtcDateTime(), nullable=True),
    Column("first_source", String(128), nullable=True),
    Column("first_campaign", String(200), nullable=True),
    Column("first_segment", String(64), nullable=True),
    Column("last_touch_at", UtcDateTime(), nullable=True),
    Column("last_source", String(128), nullable=True),
    Column("last_campaign", String(200), nullable=True),
    Column("last_segment", String(64), nullable=True),
    # Scoring (lead.scored): the latest tier, and when the lead first qualified.
    Column("tier", String(16), nullable=True),
    Column("tier_at", UtcDateTime(), nullable=True),
    Column("mql_at", UtcDateTime(), nullable=True),
    Column("ready_at", UtcDateTime(), nullable=True),
    # Hand-off (lead.assigned / lead.reassigned): first assignment, current owner.
    Column("assigned_at", UtcDateTime(), nullable=True),
    Column("team", String(64), nullable=True),
    Column("rep_id", String(64), nullable=True),
    Column("owner_since", UtcDateTime(), nullable=True),
    Column("owner_first", Boolean, nullable=False, default=False, server_default=false()),
    Column("reassignments", Integer, nullable=False, default=0),
    # Outcomes (leads.activity).
    Column("contacted_at", UtcDateTime(), nullable=True),
    Column("contacts", Integer, nullable=False, default=0),
    Column("accepted_at", UtcDateTime(), nullable=True),
    Column("rejected_at", UtcDateTime(), nullable=True),
    Column("rejection_reason", String(500), nullable=True),
    Column("converted_at", UtcDateTime(), nullable=True),
    Column("won_at", UtcDateTime(), nullable=True),
    Column("won_deals", Integer, nullable=False, default=0),
    Column("revenue", Float, nullable=False, default=0.0),
    Column("reported_profit", Float, nullable=False, default=0.0),
    Column("revenue_without_profit", Float, nullable=False, default=0.0),
    Column("lost_at", UtcDateTime(), nullable=True),
    Column("lost_reason", String(500), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_lead_lifecycles_first_touch_at", "first_touch_at"),
)

lead_costs = Table(
    "lead_costs",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("cost_per_lead", Float, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

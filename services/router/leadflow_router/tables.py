"""The router's tables: assignments, rotation pointers, the decision record, run-time overrides."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text, UniqueConstraint

from leadflow.db.tables import Id, UtcDateTime, metadata

assignments = Table(
    "assignments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("assignment_id", String(64), nullable=False, unique=True),
    Column("lead_key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("rep_id", String(64), nullable=True),
    Column("team", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    # The team's round-robin turn number this assignment took (team distributions only).
    Column("turn", Integer, nullable=True),
    # When the lead stopped being open for this assignment, and why (an outcome, reassigned).
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("close_reason", String(32), nullable=True),
    # When the CRM reported the lead converted (SQL) while this assignment held it.
    Column("converted_at", UtcDateTime(), nullable=True),
    # When the CRM first reported the lead contacted (or accepted) while this assignment
    # held it: marking the rep out of office hands on only leads not contacted yet.
    Column("contacted_at", UtcDateTime(), nullable=True),
    # The lead's company domain (its company's, else its email's unless free mail): sticky
    # routing rules look up who holds an open lead of it.
    Column("domain", String(253), nullable=True),
    # Its place among the assignments made at the same `assigned_at`, in the order the
    # router decided them: of a person's two made in one batch, a merge keeps the first.
    Column("batch_position", Integer, nullable=True),
    UniqueConstraint("lead_key", "seq"),
    Index("ix_assignments_rep_id_assigned_at", "rep_id", "assigned_at"),
    Index("ix_assignments_domain", "domain"),
    # A batch numbers its positions on after those made at its instant before.
    Index("ix_assignments_assigned_at_batch_position", "assigned_at", "batch_position"),
)

round_robin_pointers = Table(
    "round_robin_pointers",
    metadata,
    Column("team", String(64), primary_key=True),
    Column("last_rep_id", String(64), nullable=True),
    Column("turns", Integer, nullable=False),
)

routing_decisions = Table(
    "routing_decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_key", String(64), nullable=False),
    Column("assignment_id", String(64), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("team", String(64), nullable=False),
    Column("rep_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("candidates", JSON, nullable=False),
    Column("skipped", JSON, nullable=False),
    Column("config_version", String(64), nullable=False),
    Column("kind", String(16), nullable=True),
    Column("method", String(16), nullable=True),
    Column("account", String(128), nullable=True),
    Column("trace", JSON, nullable=True),
    Column("details", JSON, nullable=True),
    Index("ix_routing_decisions_lead_key_decided_at", "lead_key", "decided_at"),
)

# The scored lead as it was routed: what a reassignment or a queue retry decides on.
routed_leads = Table(
    "routed_leads",
    metadata,
    Column("lead_key", String(64), primary_key=True),
    Column("scored", JSON, nullable=False),
    Column("routed_at", UtcDateTime(), nullable=False),
)

# Run-time changes to reps made through the admin API; they win over the configuration.
rep_overrides = Table(
    "rep_overrides",
    metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(64), nullable=False),
)

rep_absences = Table(
    "rep_absences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rep_id", String(64), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("cancelled_at", UtcDateTime(), nullable=True),
    Index("ix_rep_absences_rep_id_ends_at", "rep_id", "ends_at"),
)

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("rep_id", String(64), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Index("ix_admin_audit_at", "at"),
)

# Leads waiting in a team's pool: the pool entry (the `assignments` row with status
# `pooled`) by its assignment id, when the team's manager hears nobody claimed it, and when
# that happened (once per entry). An entry waits while its assignment row is open.
pooled_leads = Table(
    "pooled_leads",
    metadata,
    Column("assignment_id", String(64), primary_key=True),
    Column("team", String(64), nullable=False),
    Column("pooled_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("alerted_at", UtcDateTime(), nullable=True),
    Index("ix_pooled_leads_due_at", "due_at"),
)

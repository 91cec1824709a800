"""Directory tables for posts held in units and registered approval relations.

Kept out of :mod:`daemon.store.models` so the directory's newer tables live together; they
share its ``Base`` (one metadata, one migration history). Like people and units, rows are
deactivated when they leave the directory file, never deleted.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base, UTCDateTime


class RoleAssignment(Base):
    """``person_id`` holds ``role`` (head, accounting_staff, ...) in ``unit_id``."""

    __tablename__ = "role_assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        UniqueConstraint("unit_id", "role", "person_id", name="uq_role_assignments_post"),
    )


class ApprovalRelation(Base):
    """``approver_id`` approves for a person or unit (``kind`` responsible or proxy).

    Valid from ``valid_from`` to ``valid_to`` inclusive; ``valid_to`` None is open-ended.
    """

    __tablename__ = "approval_relations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    approver_id: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(16))  # "person" or "unit"
    object_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "responsible" or "proxy"
    valid_from: Mapped[datetime.date] = mapped_column(Date)
    valid_to: Mapped[datetime.date | None] = mapped_column(Date, index=True)
    registered_by: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # "file": the administrator's, from the directory file (an import replaces these);
    # "registered": by mail or command (daemon.directory.relations), left alone by imports.
    source: Mapped[str] = mapped_column(String(16), default="file", server_default="file")
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The company day its registrar was last warned that it ends soon (daily expiry job).
    warned_on: Mapped[datetime.date | None] = mapped_column(Date)

    __table_args__ = (
        UniqueConstraint(
            "approver_id", "object_type", "object_id", "kind", "valid_from",
            name="uq_approval_relations_key",
        ),
        Index("ix_approval_relations_object", "object_type", "object_id"),
    )  # fmt: skip

"""What registering approval relations keeps (SPEC 7): the history every employee may read,
and the changes that wait for their registrar to confirm a gap warning."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base, UTCDateTime


class RelationHistory(Base):
    """One stored change of a relation: who, when, through what, before and after.

    Never updated or deleted: it is the record any employee can ask for."""

    __tablename__ = "relation_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    relation_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # mail, command, import
    action: Mapped[str] = mapped_column(String(16))  # registered, updated, ended, imported
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The approver and object at the time, so history by person or unit is one query.
    approver_id: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str] = mapped_column(Text, default="")


class RelationRequest(Base):
    """A valid change that would leave its object without a responsible approver for some
    days: kept aside until the registrar confirms with the one-time code mailed to them
    (only its hash is stored), or it expires."""

    __tablename__ = "relation_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registrar_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # register, update, end
    relation_id: Mapped[int | None] = mapped_column(Integer)
    change: Mapped[dict[str, Any]] = mapped_column(JSON)  # the relation as it would be
    gaps: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # confirmed, expired

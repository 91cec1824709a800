"""Tables for stored conditions and what keeps them current (SPEC 6, 6.5, 11).

Condition sets are versioned rows (a change adds a version, never edits one); factors and
period budgets are the changing values conditions refer to; the audit trail is an
append-only hash chain; executions are the requests sent to destinations on approval.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base, UTCDateTime


class ConditionSetVersion(Base):
    """One version of a condition set; the active row of each (name, case) is in force.

    ``case_number`` set means "for case N only": it replaces the set of the same name when
    that one case is examined, and nowhere else.
    """

    __tablename__ = "condition_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    case_number: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer)
    setter_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16))  # file, email, cli
    source: Mapped[str] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("name", "case_number", "version", name="uq_condition_sets_version"),
        Index("ix_condition_sets_active", "active"),
    )


class ConditionRequest(Base):
    """A condition change asked for by mail, in force only once the setter confirms it from
    their own mailbox (a forged From cannot see the code)."""

    __tablename__ = "condition_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    setter_id: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(16))  # new, replace, case, retire
    name: Mapped[str] = mapped_column(String(200))
    case_number: Mapped[str] = mapped_column(String(64), default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # pending, confirmed
    source: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class Factor(Base):
    """An external value conditions refer to as ``factor.NAME`` (e.g. an interest rate)."""

    __tablename__ = "factors"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class Budget(Base):
    """A setter's budget for one period; consumption is a conditional UPDATE on ``consumed``."""

    __tablename__ = "budgets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    set_name: Mapped[str] = mapped_column(String(200))
    budget: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(20))  # e.g. 2026-11 (month), 2026 (year)
    limit_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    consumed: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("set_name", "budget", "period", name="uq_budgets_period"),
    )


class AuditEntry(Base):
    """One link of the audit chain: ``hash`` covers the entry and the previous hash."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the chain's last link; writers lock it to append in order."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Execution(Base):
    """What became of an approved case's execution request (SPEC 6.5).

    One row per approval: ``not_executed`` (``reason`` says why: not_enabled, no_destination),
    or ``scheduled`` until the destination's calendar opens at ``due_at``, then ``sent`` or
    ``failed``. ``mail_id`` is the stored request mail, so every attempt sends the same bytes.
    """

    __tablename__ = "executions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    destination: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))  # scheduled, sent, failed, not_executed
    due_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(String(200), default="")  # as the requester sees it
    address: Mapped[str] = mapped_column(String(320), default="")
    reason: Mapped[str] = mapped_column(String(32), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    sent_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mail_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True)

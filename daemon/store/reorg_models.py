"""Reorganisations: a planned directory change and what it did to cases in flight (SPEC 10).

A reorganisation moves through planned -> in_progress -> committed (or rolled_back, or
cancelled before it began). Its directory file is stored whole, so verify, commit and every
instance sharing the database work from the same bytes. `reorg_case_backups` keeps, for each
case the commit changed, exactly what to restore on rollback; `reorg_kept_replies` holds the
replies that arrived while the change was in progress, applied once it ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from daemon.store.models import Base, UTCDateTime


class Reorganisation(Base):
    __tablename__ = "reorganisations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(500))  # file name as given
    format: Mapped[str] = mapped_column(String(8))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    begun_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The directory as it stood at begin (daemon.directory.export), for rollback.
    backup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # last verification's counts
    note: Mapped[str] = mapped_column(Text, default="")


class ReorgCaseBackup(Base):
    """One case the commit changed: its state before, what the commit decided for it
    (`plan`, acted on afterwards by its work item: daemon.cases.reorgrunner), and the asks
    that made (`after`, once `state` is done)."""

    __tablename__ = "reorg_case_backups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reorg_id: Mapped[int] = mapped_column(ForeignKey("reorganisations.id"), index=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="done", server_default="done")


class Rerouting:
    """ReorgCaseBackup.state: the case's work item has not run yet (pending), acted as the
    commit decided (done), found the case ended meanwhile (skipped), or a rollback came
    first (cancelled)."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ReorgKeptReply(Base):
    """A reply (an inbound mail) that arrived during the change; processed again at its end."""

    __tablename__ = "reorg_kept_replies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reorg_id: Mapped[int] = mapped_column(ForeignKey("reorganisations.id"), index=True)
    inbound_id: Mapped[int] = mapped_column(Integer, unique=True)
    author: Mapped[str] = mapped_column(String(320))
    kept_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReorgState:
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


def in_progress(s: Session, wait: bool = True) -> Reorganisation | None:
    """The reorganisation under way, if any: while it is, routing waits.

    `wait`: a caller about to act on the answer (keep a reply, register a request) shares
    the row's lock, so while a commit or rollback holds it the caller waits and then reads
    the change ended. Without that, on PostgreSQL a reply kept or a request registered
    during the commit's transaction would belong to a change already over, and never be
    processed. Readers that only report pass False and are never blocked (SQLite writers
    are serialised anyway)."""
    query = select(Reorganisation).where(Reorganisation.state == ReorgState.IN_PROGRESS)
    return s.scalar(query.limit(1).with_for_update(read=True) if wait else query.limit(1))

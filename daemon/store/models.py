"""SQLAlchemy models: the single durable store every channel and runner shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite drops tzinfo otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


# --- directory -----------------------------------------------------------------------------


class OrgUnit(Base):
    __tablename__ = "org_units"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_ja: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Position(Base):
    __tablename__ = "positions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_ja: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Person(Base):
    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_ja: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8))
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    position_id: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The registration and approval qualifications (SPEC 7); None: by rank, as configured.
    may_register: Mapped[bool | None] = mapped_column(Boolean)
    may_approve: Mapped[bool | None] = mapped_column(Boolean)


class PersonEmail(Base):
    __tablename__ = "person_emails"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)  # 0 = the address mail is sent to


class DirectoryImport(Base):
    __tablename__ = "directory_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    diff: Mapped[dict[str, Any]]


# --- intake and outbox ----------------------------------------------------------------------


class InboundMessage(Base):
    """Raw bytes exactly as received; stored before any channel acknowledges."""

    __tablename__ = "inbound_messages"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    envelope_from: Mapped[str] = mapped_column(String(320))
    envelope_to: Mapped[dict[str, Any]]  # {"rcpt": [...]}
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(Integer)
    # Where the input came from, stable across retries (IMAP uid, drop file): a channel
    # that crashed between storing and acknowledging stores it again as the same row.
    source_key: Mapped[str | None] = mapped_column(String(500), unique=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A retried delivery (daemon/intake/duplicates.py): the first copy holds dedupe_key while
    # the window lasts; a later copy is stored with duplicate_of and never queued.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    message_key: Mapped[str | None] = mapped_column(String(64), index=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, index=True)


class OutboundMail(Base):
    __tablename__ = "outbound_mails"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime]
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sent_at: Mapped[datetime | None]
    # Set when the mail became a dead letter (a relay 5xx, an unsendable address, retries
    # used up); `error` is the last error.
    failed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class AdminAlert(Base):
    """When each administrator alert was last mailed: one mail per key and interval."""

    __tablename__ = "admin_alerts"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    first_at: Mapped[datetime]
    last_sent_at: Mapped[datetime]
    suppressed: Mapped[int] = mapped_column(Integer, default=0)  # repeats since last mail


class Bounce(Base):
    """A delivery report about a mail ringi sent (daemon/intake/bounces.py): one row per mail
    and action, so a repeated bounce is recorded and acted on once."""

    __tablename__ = "bounces"
    __table_args__ = (
        UniqueConstraint("outbound_mail_id", "action", name="uq_bounces_mail_action"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    inbound_id: Mapped[int] = mapped_column(Integer)
    outbound_mail_id: Mapped[int] = mapped_column(Integer, index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recipient: Mapped[str] = mapped_column(String(320))  # as reported (or the mail's own)
    action: Mapped[str] = mapped_column(String(16))  # failed, delayed, delivered...
    status: Mapped[str] = mapped_column(String(32))
    diagnostic: Mapped[str] = mapped_column(Text)
    reporter: Mapped[str] = mapped_column(String(200))
    matched_by: Mapped[str] = mapped_column(String(16))  # "return-path" or "message-id"
    outcome: Mapped[str] = mapped_column(Text)


class WorkItem(Base):
    """A durable job: explicit state, attempts, next attempt, lease, last error."""

    __tablename__ = "work_items"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_work_items_claim", "queue", "state", "next_attempt_at"),)


# --- cases ----------------------------------------------------------------------------------


class Counter(Base):
    """Row-locked sequence for managing numbers, portable across SQLite and PostgreSQL."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    case_type: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    requester_id: Mapped[str] = mapped_column(String(64), index=True)
    entered_by_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), index=True)
    fields: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    thread_id: Mapped[str] = mapped_column(String(255))
    request_message_id: Mapped[str | None] = mapped_column(String(998))
    source_inbound_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    # The template version the case started with; later template edits do not touch it.
    workflow_version_id: Mapped[int | None] = mapped_column(Integer)
    # Where routing stands: {"phase": i, "step": j, "sub": k}; round counts reapplications.
    route: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    round: Mapped[int] = mapped_column(Integer, default=1)
    # Head of the case's history chain (daemon.audit.casechain); unanchored: events not yet
    # fixed by an anchor entry in the audit trail.
    history_seq: Mapped[int] = mapped_column(Integer, default=0)
    history_hash: Mapped[str | None] = mapped_column(String(64))
    history_unanchored: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class CaseStep(Base):
    """One approver asked on one case; decided once."""

    __tablename__ = "case_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    resolver: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))  # pending, approved, rejected, superseded
    asked_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    # Route position this step serves, and the ask it belongs to (several people may be
    # asked at once: any one of them, or all of them).
    round: Mapped[int] = mapped_column(Integer, default=1)
    slot: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(8), default="single")
    phase: Mapped[str] = mapped_column(String(64), default="")
    step_name: Mapped[str] = mapped_column(String(64), default="")
    pos: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16), default="approver")
    reminded_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    # When the approver's server first answered this ask with an out-of-office reply
    # (daemon/intake/away.py): claimed once, so a second one changes nothing.
    away_at: Mapped[datetime | None]
    # When the timers next look at this pending step: the earlier of its reminder and
    # escalation still to come (daemon/cases/duetimes.py); None when nothing is.
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    # The approver's post when asked: a substitute is found if it changes.
    asked_post: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("case_id", "seq"),)


class CaseEvent(Base):
    """History: who did what, with their attributes as they were at that moment."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[dict[str, Any]]
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    # Place in the case's hash chain (daemon.audit.casechain).
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ux_case_events_case_seq", "case_id", "seq", unique=True),)


class WorkflowVersion(Base):
    """Each distinct content of a workflow template, kept so running cases keep theirs."""

    __tablename__ = "workflow_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(500))
    body: Mapped[dict[str, Any]]
    loaded_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("name", "digest"), UniqueConstraint("name", "version"))


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    added_at: Mapped[datetime]
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # Where in the case it came in (daemon.cases.documents): who sent it, at which stage
    # ("request", "decision:approve", "correct", "reapply"...), round and step, and the
    # stored input (inbound_messages.id) it came with.
    added_by: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(40), server_default="request")
    round: Mapped[int] = mapped_column(Integer, server_default="1")
    step_id: Mapped[int | None] = mapped_column(Integer)
    inbound_id: Mapped[int | None] = mapped_column(Integer)


class ReplyToken(Base):
    """Only the keyed hash is stored; the token itself lives only in the mail sent."""

    __tablename__ = "reply_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("case_steps.id"), index=True)
    person_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # The Message-ID of the approval request that carried this token: a reply that lost the
    # token (plain address, edited subject) is known by the request it answers.
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)

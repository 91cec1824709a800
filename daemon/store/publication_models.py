"""Tables for partner publication (SPEC 8): partners, their keys, stamps and deliveries.

A partner's keys are kept as a history (rotation retires a key, never deletes it), so an
old delivery can still be explained. A delivery row follows one build from queued to
published (or refused, failed, purged); its progress columns feed `ringi status`.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base, UTCDateTime


class Partner(Base):
    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    emails: Mapped[list[str]] = mapped_column(JSON)
    locale: Mapped[str] = mapped_column(String(8))
    folder: Mapped[str] = mapped_column(String(500))
    folder_owner: Mapped[str] = mapped_column(String(64))
    folder_group: Mapped[str] = mapped_column(String(64))
    folder_mode: Mapped[int] = mapped_column(Integer)
    case_types: Mapped[list[str]] = mapped_column(JSON)
    document_classes: Mapped[list[str]] = mapped_column(JSON)
    max_bytes: Mapped[int] = mapped_column(BigInteger)
    volume_bytes: Mapped[int] = mapped_column(BigInteger)
    retention_days: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(16))  # file or cli
    source: Mapped[str] = mapped_column(String(500))  # the file it came from
    # SHA-256 of the validated partner (fields and key) last taken from its file: an
    # unchanged file is not applied again, so a key rotated by command stays in force.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class PartnerKey(Base):
    """A public key the partner supplied; the newest one not retired is in force."""

    __tablename__ = "partner_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    public_key: Mapped[str] = mapped_column(Text)  # PEM (SubjectPublicKeyInfo)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the DER key
    bits: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)


class Stamp(Base):
    """The company stamp on one document of a case: who, when, hash and signature."""

    __tablename__ = "stamps"
    # One stamp per document and key: two instances can never stamp a document twice.
    __table_args__ = (
        UniqueConstraint("attachment_id", "key_fingerprint", name="uq_stamps_attachment_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # base64 of the raw signature
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    stamped_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    stamped_by: Mapped[str | None] = mapped_column(String(64))


class Delivery(Base):
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # the delivery folder's name
    folder: Mapped[str] = mapped_column(String(500), default="")  # where it goes (absolute)
    # queued, building, published, refused, failed, purged
    state: Mapped[str] = mapped_column(String(20))
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    done_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    volumes: Mapped[int] = mapped_column(Integer, default=0)
    key_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

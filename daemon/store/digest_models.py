"""Digests of waiting cases (SPEC C.14): who opted out, what each digest covered.

The opt-out is its own table, not a column of `people`: directory imports rewrite people
rows, and a person's choice must outlive them. A daily digest's row is also its claim:
`(person_id, company_day)` is unique, and the row is written in the transaction that
queues the mail, so a crash neither sends a day's digest twice nor loses it, and several
daemons sharing a database send it once. Digests sent on request have no company day.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base


class DigestOptOut(Base):
    """A person who does not want the daily digest (`digest off`); `digest on` deletes it."""

    __tablename__ = "digest_opt_outs"
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime.datetime]


class Digest(Base):
    """One digest mail: its reply token (keyed hash only) and whom it was sent to."""

    __tablename__ = "digests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "daily" or "request"
    company_day: Mapped[datetime.date | None] = mapped_column(Date)
    created_at: Mapped[datetime.datetime]
    expires_at: Mapped[datetime.datetime]
    # The digest mail's Message-ID: a reply that lost the token is known by it.
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)

    __table_args__ = (UniqueConstraint("person_id", "company_day"),)


class DigestItem(Base):
    """A step a digest listed, with the fresh reply token issued for it in that digest."""

    __tablename__ = "digest_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    step_id: Mapped[int] = mapped_column(ForeignKey("case_steps.id"))
    token_id: Mapped[int] = mapped_column(ForeignKey("reply_tokens.id"))

    __table_args__ = (UniqueConstraint("digest_id", "step_id"),)

"""Reply tokens: unguessable, stored only as a keyed hash, single use, expiring.

Tokens are lower-case base32 so they survive MTAs that fold the case of local parts.
Each token row also keeps the Message-ID of the approval request that carried it, so a reply
that lost the token (sent to the plain address, subject edited) is still known by the
request its In-Reply-To/References name, and checked exactly like one with the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.store.db import rowcount
from daemon.store.models import OutboundMail, ReplyToken

TOKEN_BYTES = 20  # 160 bits
TOKEN_RE = re.compile(r"^[a-z2-7]{32}$")
SUBJECT_TOKEN_RE = re.compile(r"\[#([A-Za-z2-7]{32})\]")


def new_token() -> str:
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode().lower()


def is_token(text: str) -> bool:
    return bool(TOKEN_RE.match(text))


def token_from_subject(subject: str) -> str | None:
    m = SUBJECT_TOKEN_RE.search(subject)
    return m.group(1).lower() if m else None


class TokenProblem(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class TokenCheck:
    row: ReplyToken | None
    problem: TokenProblem | None


class TokenService:
    def __init__(self, key: bytes, ttl: timedelta) -> None:
        self._key = key
        self.ttl = ttl

    def digest(self, token: str) -> str:
        return hmac.new(self._key, token.lower().encode(), hashlib.sha256).hexdigest()

    def issue(self, s: Session, case_id: int, step_id: int, person_id: str, now: datetime) -> str:
        token = new_token()
        s.add(
            ReplyToken(
                token_hash=self.digest(token),
                case_id=case_id,
                step_id=step_id,
                person_id=person_id,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        return token

    def check(self, s: Session, token: str, now: datetime) -> TokenCheck:
        row = s.scalar(select(ReplyToken).where(ReplyToken.token_hash == self.digest(token)))
        return self.check_row(row, now)

    def check_answered(self, s: Session, message_ids: Sequence[str],
                       now: datetime) -> TokenCheck:
        """The token of the approval request a reply answers, checked like a token."""
        return self.check_row(self.answered(s, message_ids), now)

    def answered(self, s: Session, message_ids: Sequence[str]) -> ReplyToken | None:
        """The token of the first of `message_ids` (most recent first: In-Reply-To, then
        References from the end) that is an approval request ringi sent; only those count,
        never a case's thread id, an acknowledgement or any other notice."""
        ids = list(dict.fromkeys(message_ids))[:100]  # a hostile References list stays cheap
        if not ids:
            return None
        rows = {r.message_id: r for r in s.scalars(
            select(ReplyToken).where(ReplyToken.message_id.in_(ids)))}
        return next((rows[i] for i in ids if i in rows), None)

    def remember_request(self, s: Session, case_id: int, token: str) -> None:
        """Keep the Message-ID of the approval request just stored for `token` (never the
        token: the mail is found by the reply address it carries, then only its id is kept)."""
        row = s.scalar(select(ReplyToken).where(ReplyToken.token_hash == self.digest(token)))
        mail = s.scalar(select(OutboundMail).where(
            OutboundMail.case_id == case_id, OutboundMail.template == "approval_request")
            .order_by(OutboundMail.id.desc()).limit(1))
        if row is not None and mail is not None and f"+{token}@".encode() in mail.raw:
            row.message_id = mail.message_id

    @staticmethod
    def check_row(row: ReplyToken | None, now: datetime) -> TokenCheck:
        if row is None:
            return TokenCheck(None, TokenProblem.UNKNOWN)
        if row.used_at is not None:
            return TokenCheck(row, TokenProblem.USED)
        if row.revoked_at is not None:
            return TokenCheck(row, TokenProblem.REVOKED)
        if row.expires_at <= now:
            return TokenCheck(row, TokenProblem.EXPIRED)
        return TokenCheck(row, None)

    def consume(self, s: Session, row: ReplyToken, now: datetime) -> bool:
        """Mark used; False if another transaction used or revoked it first (single use
        under races; a step moved away meanwhile, e.g. by a reorganisation, is not decided)."""
        result = s.execute(
            update(ReplyToken)
            .where(ReplyToken.id == row.id, ReplyToken.used_at.is_(None),
                   ReplyToken.revoked_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def revoke_step(self, s: Session, step_id: int, now: datetime) -> None:
        s.execute(
            update(ReplyToken)
            .where(ReplyToken.step_id == step_id, ReplyToken.used_at.is_(None),
                   ReplyToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )

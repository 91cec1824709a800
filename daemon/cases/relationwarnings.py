"""Expiry warnings for approval relations (SPEC 7): a relation's registrar hears before it ends.

Run from the timers' pass. Each company day (the `[workflow] timezone`'s, not UTC's), every
active proxy relation whose last day is at most `[relations] warn_days` away is mailed to its
registrar, and so is a responsible relation whose end would leave its object without a
responsible approver the day after. Relations from the directory file go to the
administrator, who changes them in the file.

Once a day, crash-safe: the relation's `warned_on` is claimed with a conditional UPDATE in
the transaction that queues the mail (the outbox is transactional) and writes the audit
entry, so a crash neither sends a day's warning twice nor loses it, and two daemons sharing a
database warn once. Extending a relation beyond the window stops the warnings; they resume
if it comes back into it. Each pass reads only the relations ending within the window, by
the index on `valid_to`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.clock import Clock
from daemon.config import Config
from daemon.directory.importer import relation_record
from daemon.directory.lookup import Member, member, primary_email, unit
from daemon.directory.registration import Gap, gaps
from daemon.notify.notifier import Notifier
from daemon.store.db import Store, rowcount
from daemon.store.directory_models import ApprovalRelation

log = logging.getLogger(__name__)
TEMPLATE = "relation_expiry"


class ExpiryWarnings:
    def __init__(self, store: Store, notifier: Notifier, audit: AuditTrail, cfg: Config,
                 clock: Clock) -> None:
        self.store = store
        self.notifier = notifier
        self.audit = audit
        self.cfg = cfg
        self.clock = clock
        # Responsible relations found today to leave no gap: not judged again until tomorrow
        # (a pass must not redo that work for each of them every few seconds).
        self._quiet: tuple[datetime.date | None, set[int]] = (None, set())

    def today(self) -> datetime.date:
        return self.clock.now().astimezone(self.cfg.workflow.zone).date()

    def due(self) -> int:
        """Warn for every relation due a warning today; returns how many were sent."""
        window = self.cfg.relations.warn_days
        if window <= 0:
            return 0
        today = self.today()
        if self._quiet[0] != today:
            self._quiet = (today, set())
        with self.store.transaction() as s:
            ids = list(s.scalars(select(ApprovalRelation.id).where(
                *self._due(today, window)).order_by(ApprovalRelation.valid_to,
                                                    ApprovalRelation.id)))
        done = 0
        for rid in ids:
            if rid in self._quiet[1]:
                continue
            try:
                done += self._warn(rid, today, window)
            except Exception:
                log.exception("relation %s: the expiry warning failed; next pass retries", rid)
        return done

    @staticmethod
    def _due(today: datetime.date, window: int) -> tuple[Any, ...]:
        """In force today, last day within the window, not yet warned today."""
        return (ApprovalRelation.valid_to >= today,
                ApprovalRelation.valid_to <= today + datetime.timedelta(days=window),
                ApprovalRelation.active.is_(True), ApprovalRelation.valid_from <= today,
                or_(ApprovalRelation.warned_on.is_(None), ApprovalRelation.warned_on < today))

    def _warn(self, rid: int, today: datetime.date, window: int) -> int:
        with self.store.transaction() as s:
            row = s.scalar(select(ApprovalRelation).where(
                ApprovalRelation.id == rid, *self._due(today, window)))
            if row is None or row.valid_to is None:
                return 0  # changed or warned by another daemon since it was selected
            left: list[Gap] = []
            if row.kind == "responsible":
                left = self._gap_after(s, row, today)
                if not left:
                    self._quiet[1].add(rid)
                    return 0
            to = self._registrar(s, row)
            if to is None:
                log.error("relation %s ends on %s, but neither its registrar %s nor the "
                          "administrator %s can be mailed: no warning sent", rid,
                          row.valid_to, row.registered_by or "-", self.cfg.workflow.admin)
                self._quiet[1].add(rid)
                return 0
            # The relation's row before the audit head, as RelationRegistry changes it:
            # one lock order with the only other audited writer of these rows.
            if not rowcount(s.execute(
                    update(ApprovalRelation).where(ApprovalRelation.id == rid,
                                                   *self._due(today, window))
                    .values(warned_on=today).execution_options(synchronize_session=False))):
                return 0  # another daemon won the day's warning, or it was just extended
            s.refresh(row)
            assert row.valid_to is not None
            context = self._context(s, row, to, today, left)
            self.notifier.to_member(s, TEMPLATE, to, context)
            self.audit.append(s, "relation expiry warned", None, f"relation {rid}", {
                "to": to.id, "kind": row.kind, "approver": row.approver_id,
                "object": f"{row.object_type} {row.object_id}",
                "valid_to": row.valid_to.isoformat(), "days_left": context["days_left"],
                "company_day": today.isoformat(), "gaps": [g.describe() for g in left]})
            return 1

    def _gap_after(self, s: Session, row: ApprovalRelation,
                   today: datetime.date) -> list[Gap]:
        """The days after the relation's last day that nobody else covers as responsible
        approver (empty: a successor takes over the next day). The rules compare the object's
        standing relations with this one left open against them as they stand."""
        assert row.valid_to is not None
        standing = [(r.id, relation_record(r)) for r in s.scalars(select(ApprovalRelation).where(
            ApprovalRelation.object_type == row.object_type,
            ApprovalRelation.object_id == row.object_id, ApprovalRelation.active.is_(True),
            or_(ApprovalRelation.valid_to.is_(None), ApprovalRelation.valid_to >= today)))]
        after = [rec for _, rec in standing]
        before = [replace(rec, valid_to=None) if i == row.id else rec for i, rec in standing]
        next_day = row.valid_to + datetime.timedelta(days=1)
        return [g for g in gaps(before, after, today) if g.first == next_day]

    def _registrar(self, s: Session, row: ApprovalRelation) -> Member | None:
        """Who can extend it: the registrar of a registered relation (the administrator if
        they have left or have no address), the administrator for the directory file's."""
        admin = self.cfg.workflow.admin
        first = row.registered_by if row.source == "registered" and row.registered_by \
            else admin
        for who in dict.fromkeys((first, admin)):
            found = member(s, who)
            if found is not None and found.person.active and primary_email(s, who):
                return found
        return None

    def _context(self, s: Session, row: ApprovalRelation, to: Member, today: datetime.date,
                 left: list[Gap]) -> dict[str, Any]:
        assert row.valid_to is not None
        loc = to.locale
        approver = member(s, row.approver_id)
        if row.object_type == "unit":
            found = unit(s, row.object_id)
            name = (found.name_ja if loc == "ja" else found.name) if found else row.object_id
        else:
            obj = member(s, row.object_id)
            name = obj.display_name(loc) if obj else row.object_id
        return {
            "recipient": to.display_name(loc), "recipient_id": to.id, "relation_id": row.id,
            "approver": approver.display_name(loc) if approver else row.approver_id,
            "approver_id": row.approver_id, "object_type": row.object_type,
            "object_id": row.object_id, "object_name": name, "kind": row.kind,
            "valid_from": row.valid_from.isoformat(), "last_day": row.valid_to.isoformat(),
            "days_left": (row.valid_to - today).days,
            "gaps": [{"first": g.first.isoformat(), "last": g.last.isoformat() if g.last
                      else None, "text": g.describe()} for g in left],
            "from_file": row.source != "registered", "window": self.cfg.relations.warn_days,
            "registered_by": row.registered_by or "", "for_registrar": to.id == row.registered_by,
        }

"""Stamp and publish steps, and the runner that builds deliveries (SPEC 8).

At a stamp or publish step the case's documents are stamped in the routing transaction;
the route goes on only when every one is. A publish step then checks each partner's
conditions before any work (refusals are told to the requester and the administrator)
and queues one delivery per partner. The "publication" runner builds each delivery in
the transmission folder (streaming archive, wrapped password, signed manifest), moves it
into the partner's folder in one rename, and mails the partner. Expired deliveries are
purged by the timer.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.cases.documents import current_documents
from daemon.cases.states import CaseState
from daemon.directory.lookup import Member, member
from daemon.publication.folders import FolderError, FolderRule, remove_delivery
from daemon.publication.partners import PartnerRegistry, PartnerView
from daemon.publication.stamp import Stamper, StampError
from daemon.routing.templates import Step
from daemon.store.db import Store, rowcount
from daemon.store.models import Case, CaseEvent
from daemon.store.publication_models import Delivery
from daemon.workqueue.queue import WorkQueue

log = logging.getLogger(__name__)
QUEUE = "publication"


def folder_rule(p: PartnerView, folder: str = "") -> FolderRule:
    """The partner's folder rule; `folder` is where an existing delivery went (it stays
    there even if the partner's folder is changed later)."""
    return FolderRule(Path(folder or p.folder).absolute(), p.folder_owner, p.folder_group,
                      p.folder_mode)


class Publisher:
    def __init__(self, store: Store, queue: WorkQueue, workflow: Any,
                 partners: PartnerRegistry, stamper: Stamper) -> None:
        self.store = store
        self.queue = queue
        self.wf = workflow
        self.partners = partners
        self.stamper = stamper

    # --- in the routing transaction --------------------------------------------------------

    def at_step(self, s: Session, case: Case, step: Step, last_actor: Member) -> bool:
        """True when the route may go on.

        A publish step checks every partner's conditions before any work, so a partner
        that refuses costs nothing: the documents are stamped (hashed and signed) only for
        a stamp step or when at least one partner will receive them. The route goes on once
        they are stamped; when every partner refuses, nothing is stamped and the route goes
        on too (the publish step is over; each refusal is in the history and was mailed to
        the requester and the administrator). A stamping failure suspends the case.
        """
        wf = self.wf
        accepted: list[PartnerView] = []
        refused: list[tuple[str, PartnerView | None, str]] = []
        for name in step.partners if step.action == "publish" else ():
            p = self.partners.get(s, name)
            reason = self.refusal(s, case, p, name)
            if p is not None and reason is None:
                accepted.append(p)
            else:
                refused.append((name, p, reason or "refused"))
        stamps = []
        if step.action == "stamp" or accepted:
            approver = self.approver(s, case, last_actor)
            try:
                stamps = self.stamper.stamp_case(
                    s, case, approver.id if approver else None,
                    lambda detail: wf.record(s, case, "stamped", approver, detail=detail))
            except StampError as exc:
                case.state = CaseState.SUSPENDED
                wf.record(s, case, "suspended", None, detail=f"stamping failed: {exc}")
                self._tell_admin(s, case, "stamp_failed", str(exc))
                return False  # refusals are told when the case is resumed and gets here
        for name, p, reason in refused:
            self._refuse(s, case, name, p, reason)
        if accepted:
            wf.record(s, case, "stamp complete", None,
                      detail=f"{len(stamps)} document(s) stamped; publishing to "
                      + ", ".join(p.name for p in accepted))
        for p in accepted:
            self._queue(s, case, p)
        return True

    def approver(self, s: Session, case: Case, last_actor: Member) -> Member | None:
        """Whose approval led to the stamp: the last actor if they approved this case;
        None (the company stamp by ringi) when the route reached the step unapproved."""
        approved = s.scalar(select(CaseEvent.id).where(
            CaseEvent.case_id == case.id, CaseEvent.actor_id == last_actor.id,
            CaseEvent.decision == "approve").limit(1))
        return last_actor if approved is not None else None

    def refusal(self, s: Session, case: Case, p: PartnerView | None, name: str) -> str | None:
        """Why this partner may not receive this case, checked before any work; None: ok."""
        if p is None or not p.active:
            return f"there is no active partner {name!r}"
        if p.case_types and case.case_type not in p.case_types:
            return (f"{p.title} may receive {', '.join(p.case_types)}, not "
                    f"{case.case_type}")
        doc_class = str((case.fields or {}).get("document_class") or "")
        if p.document_classes and doc_class not in p.document_classes:
            return (f"{p.title} may receive document classes "
                    f"{', '.join(p.document_classes)}, not {doc_class or '(none given)'}")
        docs = current_documents(s, case.id)  # what a delivery would carry
        if not docs:
            return "the case has no documents to publish"
        size = sum(d.size for d in docs)
        if size > p.max_bytes:
            return (f"the documents total {size:,} bytes; {p.title} accepts at most "
                    f"{p.max_bytes:,} bytes per delivery")
        return None

    def _refuse(self, s: Session, case: Case, name: str, p: PartnerView | None,
                reason: str) -> None:
        """Nothing is built or sent; the history, the requester and the administrator
        hear why (a known partner keeps a refused delivery row, for `ringi status`)."""
        if p is not None:
            now = self.wf.clock.now()
            s.add(Delivery(case_id=case.id, partner_id=p.id, name="", state="refused",
                           folder=str(Path(p.folder).absolute()), created_at=now,
                           updated_at=now, detail={"reason": reason}))
            s.flush()
        self.wf.record(s, case, "publication refused", None,
                       detail=f"{p.name}: {reason}" if p else reason)
        self.tell(s, case, "refused", p.title if p else name, reason)

    def _queue(self, s: Session, case: Case, p: PartnerView) -> Delivery:
        now = self.wf.clock.now()
        d = Delivery(case_id=case.id, partner_id=p.id, name="", state="queued",
                     folder=str(Path(p.folder).absolute()), created_at=now, updated_at=now,
                     detail={})
        s.add(d)
        s.flush()
        d.name = f"{case.number}-{p.name}-{d.id}"
        self.queue.enqueue(s, QUEUE, d.id)
        self.wf.record(s, case, "publication queued", None,
                       detail=f"delivery {d.name} to {p.title} ({p.name})")
        return d

    # --- notices ---------------------------------------------------------------------------

    def tell(self, s: Session, case: Case, outcome: str, partner: str, reason: str) -> None:
        """The requester and the administrator hear about refusals and failures."""
        ctx = {"outcome": outcome, "partner": partner, "reason": reason}
        self.wf.tell_requester(s, case, "publication_notice", ctx)
        admin = member(s, self.wf.cfg.workflow.admin)
        if admin is not None and admin.id != case.requester_id:
            self.wf.send(s, "publication_notice", admin, case, ctx)

    def _tell_admin(self, s: Session, case: Case, outcome: str, reason: str) -> None:
        admin = member(s, self.wf.cfg.workflow.admin)
        if admin is not None:
            self.wf.send(s, "publication_notice", admin, case,
                         {"outcome": outcome, "partner": "", "reason": reason})

    # --- purge -----------------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Remove exactly the deliveries whose time is up, recording each (timer).

        Each is claimed first (published -> purged, conditionally) in the transaction that
        removes and records it, so when two daemons purge at once only one records it; a
        removal that fails rolls the claim back and is tried again on the next tick.
        """
        now = self.wf.clock.now()
        with self.store.transaction() as s:
            due = s.scalars(select(Delivery.id).where(
                Delivery.state == "published", Delivery.expires_at <= now)).all()
        done = 0
        for did in due:
            try:
                with self.store.transaction() as s:
                    done += self._purge_one(s, did, now)
            except (OSError, FolderError) as exc:
                log.error("purge of delivery %s failed: %s", did, exc)
        return done

    def _purge_one(self, s: Session, did: int, now: datetime) -> int:
        if rowcount(s.execute(
                update(Delivery).where(Delivery.id == did, Delivery.state == "published")
                .values(state="purged", purged_at=now, updated_at=now)
                .execution_options(synchronize_session=False))) != 1:
            return 0  # purged meanwhile (another daemon)
        d = s.get(Delivery, did)
        assert d is not None
        p = self.partners.by_id(s, d.partner_id)
        case = s.get(Case, d.case_id)
        if p is None or case is None:
            raise FolderError(f"delivery {d.name}: its case or partner is gone")
        removed = remove_delivery(folder_rule(p, d.folder), d.name)  # raises: rolled back
        self.wf.record(s, case, "delivery purged", None,
                       detail=f"{d.name} removed from {p.title}'s folder after "
                       f"{p.retention_days} days" + ("" if removed else
                                                     " (it was already gone)"))
        if self.wf.library.audit is not None:
            self.wf.library.audit(s, "delivery purged", None, f"delivery {d.name}",
                                  {"partner": p.name, "case": case.number})
        return 1


def clear_staging(path: Path) -> None:
    """A build interrupted by a crash is started over from nothing."""
    if os.path.lexists(path):
        shutil.rmtree(path)


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
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.states import CaseState
from daemon.directory.lookup import Member, member
from daemon.publication.folders import FolderError, FolderRule, remove_delivery
from daemon.publication.partners import PartnerRegistry, PartnerView
from daemon.publication.stamp import Stamper, StampError
from daemon.routing.templates import Step
from daemon.store.db import Store
from daemon.store.models import Attachment, Case
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
        """True when the route may go on (every document stamped)."""
        wf = self.wf
        try:
            stamps = self.stamper.stamp_case(
                s, case, None, lambda detail: wf.record(s, case, "stamped", None,
                                                        detail=detail))
        except StampError as exc:
            case.state = CaseState.SUSPENDED
            wf.record(s, case, "suspended", None, detail=f"stamping failed: {exc}")
            self._tell_admin(s, case, "stamp_failed", str(exc))
            return False
        if step.action == "stamp":
            return True
        wf.record(s, case, "stamp complete", None,
                  detail=f"{len(stamps)} document(s) stamped; publishing to "
                  + ", ".join(step.partners))
        for name in step.partners:
            self.queue_delivery(s, case, name)
        return True

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
        docs = s.scalars(select(Attachment).where(Attachment.case_id == case.id)).all()
        if not docs:
            return "the case has no documents to publish"
        size = sum(d.size for d in docs)
        if size > p.max_bytes:
            return (f"the documents total {size:,} bytes; {p.title} accepts at most "
                    f"{p.max_bytes:,} bytes per delivery")
        return None

    def queue_delivery(self, s: Session, case: Case, name: str) -> Delivery | None:
        wf = self.wf
        now = wf.clock.now()
        p = self.partners.get(s, name)
        reason = self.refusal(s, case, p, name)
        if p is None:  # nothing to hang a delivery row on; the history says it all
            assert reason is not None
            wf.record(s, case, "publication refused", None, detail=reason)
            self.tell(s, case, "refused", name, reason)
            return None
        d = Delivery(case_id=case.id, partner_id=p.id, name="", state="queued",
                     folder=str(Path(p.folder).absolute()), created_at=now, updated_at=now,
                     detail={})
        if reason is not None:
            d.state, d.detail = "refused", {"reason": reason}
            s.add(d)
            s.flush()
            wf.record(s, case, "publication refused", None, detail=f"{p.name}: {reason}")
            self.tell(s, case, "refused", p.title, reason)
            return d
        s.add(d)
        s.flush()
        d.name = f"{case.number}-{p.name}-{d.id}"
        self.queue.enqueue(s, QUEUE, d.id)
        wf.record(s, case, "publication queued", None,
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
        """Remove exactly the deliveries whose time is up, recording each (timer)."""
        now = self.wf.clock.now()
        with self.store.transaction() as s:
            due = s.scalars(select(Delivery.id).where(
                Delivery.state == "published", Delivery.expires_at <= now)).all()
        done = 0
        for did in due:
            with self.store.transaction() as s:
                d = s.get(Delivery, did)
                if d is None or d.state != "published":
                    continue
                p = self.partners.by_id(s, d.partner_id)
                case = s.get(Case, d.case_id)
                if p is None or case is None:
                    continue
                try:
                    removed = remove_delivery(folder_rule(p, d.folder), d.name)
                except (OSError, FolderError) as exc:
                    log.error("purge of delivery %s failed: %s", d.name, exc)
                    continue
                d.state, d.purged_at, d.updated_at = "purged", now, now
                self.wf.record(s, case, "delivery purged", None,
                               detail=f"{d.name} removed from {p.title}'s folder after "
                               f"{p.retention_days} days" + ("" if removed else
                                                             " (it was already gone)"))
                if self.wf.library.audit is not None:
                    self.wf.library.audit(s, "delivery purged", None, f"delivery {d.name}",
                                          {"partner": p.name, "case": case.number})
                done += 1
        return done


def clear_staging(path: Path) -> None:
    """A build interrupted by a crash is started over from nothing."""
    if os.path.lexists(path):
        shutil.rmtree(path)


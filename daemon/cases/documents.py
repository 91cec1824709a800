"""Documents at every stage (SPEC 3 "technical information").

Files that come with a request, a decision reply, `correct N` or `reapply N` are stored by
SHA-256 and attached to the case with who sent them, when, at which stage, round and step,
and via which stored input. A file that is not added (empty, too large, a blocked type, or
the mail itself was refused) is named in the answer to its sender: nothing is dropped
silently.

Which documents a stamp or a partner delivery carries: the *current* version of each name.
A later document whose name is the same as an earlier one's (as the partner's disk would
see it: plain, NFC, without regard to case) replaces it there; the earlier one stays on the
case, shown by `ringi case show` as superseded, but is neither stamped anew nor delivered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.blobs import BlobStore
from daemon.clock import Clock
from daemon.config import CasesConfig
from daemon.directory.lookup import Member
from daemon.parsing.message import Attachment as MailAttachment
from daemon.publication.names import plain_name
from daemon.store.models import Attachment, Case

if TYPE_CHECKING:
    from daemon.cases.workflow import Workflow

Note = dict[str, Any]  # one file as its sender's confirmation lists it

# Why a file was not added (`why` of a note; the mail templates say it in each language).
REASONS = {
    "empty": "empty file",
    "too_large": "larger than {detail} bytes",
    "blocked": "file type .{detail} is not accepted",
    "refused": "the mail was not accepted",
    "not_done": "nothing was done",
    "no_documents": "this command adds no documents",
}


@dataclass(frozen=True)
class StoredDocument:
    """A document already written to the blob store (e.g. a drop-folder bundle's file)."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Stage:
    """Where in the case documents come in: "request", "decision:approve" (or reject,
    return, hold), "correct", "reapply"; who sent them; the step a decision was about."""

    name: str
    by: Member | None
    step_id: int | None = None
    inbound_id: int | None = None


def name_key(filename: str) -> str:
    """Two documents with this key are one file on the partner's disk."""
    return plain_name(filename).casefold()


def note(filename: str, size: int, sha256: str, outcome: str, why: str = "",
         detail: str = "") -> Note:
    """`outcome`: "added", "already" (same name and content as the current one) or
    "refused" (`why`: a key of REASONS; `reason` says it in English)."""
    return {"filename": filename, "size": size, "sha256": sha256, "short": sha256[:16],
            "outcome": outcome, "why": why, "detail": detail,
            "reason": REASONS.get(why, why).format(detail=detail)}


def not_added(files: Sequence[MailAttachment], why: str) -> list[Note]:
    """The files of a mail that changed nothing: none was added, each is named."""
    return [note(f.filename, len(f.data), "", "refused", why) for f in files]


def _batch(a: Attachment) -> tuple[object, ...]:
    """The mail or input a document came with: its documents never replace each other."""
    return (a.inbound_id, a.stage, a.round, a.added_at)


def _versions(docs: Sequence[Attachment]) -> tuple[dict[str, list[Attachment]],
                                                     dict[int, Attachment]]:
    """Per name, the documents of the latest input that brought that name; and for each
    replaced document (by id), the first of the ones that replaced it."""
    latest: dict[str, list[Attachment]] = {}
    replaced: dict[int, Attachment] = {}
    for a in sorted(docs, key=lambda d: d.id):
        key = name_key(a.filename)
        before = latest.get(key)
        if before and _batch(before[0]) == _batch(a):
            before.append(a)
            continue
        for old in before or ():
            replaced[old.id] = a
        latest[key] = [a]
    return latest, replaced


def case_documents(s: Session, case_id: int) -> list[Attachment]:
    """Every document of the case, current or replaced, in the order they were added."""
    return list(s.scalars(select(Attachment).where(Attachment.case_id == case_id)
                          .order_by(Attachment.id)))


def current_documents(s: Session, case_id: int) -> list[Attachment]:
    """The documents a stamp or delivery carries: for each name, those of the latest input
    that brought it (one mail's files never replace each other), in the order added."""
    latest, _ = _versions(case_documents(s, case_id))
    return sorted((a for group in latest.values() for a in group), key=lambda a: a.id)


def superseded_by(docs: Sequence[Attachment]) -> dict[int, Attachment]:
    """For each replaced document (by id), the later one of the same name."""
    return _versions(docs)[1]


def describe(notes: Sequence[Note]) -> str:
    """One history line: what was added, what was not and why."""
    added = [f"{n['filename']} ({n['size']:,} bytes, sha256 {n['sha256']})"
             for n in notes if n["outcome"] == "added"]
    same = [n["filename"] for n in notes if n["outcome"] == "already"]
    refused = [f"{n['filename']} ({n['reason']})" for n in notes if n["outcome"] == "refused"]
    parts = [f"added {', '.join(added)}" if added else "",
             f"already on the case: {', '.join(same)}" if same else "",
             f"not added: {', '.join(refused)}" if refused else ""]
    return "; ".join(p for p in parts if p)


class Documents:
    def __init__(self, cfg: CasesConfig, clock: Clock, blobs: BlobStore) -> None:
        self.cfg = cfg
        self.clock = clock
        self.blobs = blobs

    def refusal(self, f: MailAttachment) -> tuple[str, str] | None:
        """Why a file is not added to a case (REASONS key, detail); None: it is."""
        if not f.data:
            return "empty", ""
        if len(f.data) > self.cfg.max_document_bytes:
            return "too_large", f"{self.cfg.max_document_bytes:,}"
        ext = f.filename.rsplit(".", 1)[-1].strip().lower() if "." in f.filename else ""
        if ext and ext in {b.lower().lstrip(".") for b in self.cfg.blocked_extensions}:
            return "blocked", ext
        return None

    def judged(self, files: Sequence[MailAttachment]) -> list[Note]:
        """The files of a mail that changed nothing, each with why it was not added."""
        return [note(f.filename, len(f.data), "", "refused",
                     *(self.refusal(f) or ("not_done", ""))) for f in files]

    def fresh(self, s: Session, case: Case,
              files: Sequence[MailAttachment]) -> list[MailAttachment]:
        """The files `add` would attach: accepted, and not the current document already."""
        current = {(a.filename, a.sha256) for a in current_documents(s, case.id)}
        return [f for f in files if self.refusal(f) is None and
                (f.filename, hashlib.sha256(f.data).hexdigest()) not in current]

    def add(self, s: Session, case: Case, files: Sequence[MailAttachment], stage: Stage,
            stored: Sequence[StoredDocument] = ()) -> list[Note]:
        """Store and attach what may be attached, in the caller's transaction (the blob is
        written and fsynced first, so a committed row always has its file)."""
        current = {(a.filename, a.sha256) for a in current_documents(s, case.id)}
        notes: list[Note] = []
        docs: list[StoredDocument] = list(stored)
        for f in files:
            why = self.refusal(f)
            if why is not None:
                notes.append(note(f.filename, len(f.data), "", "refused", *why))
                continue
            docs.append(StoredDocument(f.filename, f.content_type, len(f.data),
                                       self.blobs.put(f.data)))
        now = self.clock.now()
        for doc in docs:
            if (doc.filename, doc.sha256) in current:  # e.g. the original, sent back
                notes.append(note(doc.filename, doc.size, doc.sha256, "already"))
                continue
            row = Attachment(case_id=case.id, added_at=now, filename=doc.filename,
                             content_type=doc.content_type, size=doc.size, sha256=doc.sha256,
                             added_by=stage.by.id if stage.by else None, stage=stage.name,
                             round=case.round, step_id=stage.step_id,
                             inbound_id=stage.inbound_id)
            s.add(row)
            current.add((doc.filename, doc.sha256))
            notes.append(note(doc.filename, doc.size, doc.sha256, "added"))
        return notes

    def attach(self, s: Session, wf: Workflow, case: Case, files: Sequence[MailAttachment],
               stage: Stage) -> list[Note]:
        """`add`, and a "documents" entry in the case history when a file came."""
        notes = self.add(s, case, files, stage)
        if notes:
            wf.record(s, case, "documents", stage.by,
                      detail=f"with {stage.name} (round {case.round}): {describe(notes)}")
        return notes

"""The "publication" runner: builds one delivery and publishes it (SPEC 8).

A delivery folder holds the archive volumes, `password.bin` (the random archive password
encrypted to the partner's public key), `manifest.json` with `manifest.json.sig` (signed
with the company stamp key), the stamp's public key and a README. Inside the archive are
the documents and their stamp signatures. The build streams: memory does not grow with the
documents. Progress goes to the log and to the delivery row (`ringi status`); the job's
lease is renewed as it goes, so a long build is never taken over by another daemon.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from daemon.cases.documents import current_documents
from daemon.clock import Clock
from daemon.publication.archive import ArchiveError, Document, build_archive, new_password
from daemon.publication.envelope import wrap_password
from daemon.publication.folders import (
    FolderError,
    FolderRule,
    FolderUnavailable,
    ensure_folder,
    publish,
    published_manifest,
    seal,
)
from daemon.publication.names import archive_names
from daemon.publication.partners import PartnerView
from daemon.publication.publisher import QUEUE, Publisher, clear_staging, folder_rule
from daemon.publication.stamp import StampError, StampKey, sha256_file
from daemon.store.db import Store
from daemon.store.models import Case
from daemon.store.publication_models import Delivery, Stamp
from daemon.workqueue.queue import Claimed, PermanentError, TemporaryError, WorkQueue

log = logging.getLogger(__name__)


class DeliveryBuilder:
    queue_name: str = QUEUE

    def __init__(self, store: Store, queue: WorkQueue, clock: Clock, publisher: Publisher,
                 key: StampKey, staging_root: Path, progress_every: int) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self.publisher = publisher
        self.key = key
        self.staging_root = staging_root
        self.progress_every = progress_every

    def process(self, item: Claimed) -> None:
        """Build and publish; the last failed attempt marks the delivery failed and says so
        (a dead letter can still be retried with `ringi queue retry`)."""
        try:
            self._process(item)
        except (PermanentError, TemporaryError) as exc:
            if isinstance(exc, TemporaryError):
                with self.store.transaction() as s:
                    last = item.attempts >= self.queue.max_attempts(s, item)
                if last:
                    self._failed(item, f"gave up after {item.attempts} attempts: {exc}")
            raise
        except Exception as exc:
            with self.store.transaction() as s:
                last = item.attempts >= self.queue.max_attempts(s, item)
            if last:
                self._failed(item, f"the build failed {item.attempts} time(s); last: {exc}")
            raise

    def _process(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            d = s.get(Delivery, item.ref_id)
            if d is None or d.state not in ("queued", "building", "failed"):
                self.queue.complete(s, item)
                return
            case = s.get(Case, d.case_id)
            p = self.publisher.partners.by_id(s, d.partner_id)
            if case is None or p is None:
                raise PermanentError(f"delivery {item.ref_id}: case or partner is gone")
            reason = self.publisher.refusal(s, case, p, p.name)
            if reason is not None:  # the partner's conditions changed since it was queued
                d.state, d.detail = "refused", {**(d.detail or {}), "reason": reason}
                self.publisher.wf.record(s, case, "publication refused", None,
                                         detail=f"{p.name}: {reason}")
                self.publisher.tell(s, case, "refused", p.title, reason)
                self.queue.complete(s, item)
                return
            try:  # a document not stamped with the key in force (e.g. the key changed)
                self.publisher.stamper.stamp_case(s, case, None, lambda line: (
                    self.publisher.wf.record(s, case, "stamped", None, detail=line)))
            except StampError as exc:
                stamp_problem: str | None = str(exc)
            else:
                stamp_problem = None
            # Documents of every stage; of two with one name, the later (daemon.cases.documents).
            docs = current_documents(s, case.id)
            rows = s.scalars(select(Stamp).where(
                Stamp.case_id == case.id, Stamp.key_fingerprint == self.key.fingerprint)).all()
            stamps = {st.attachment_id: base64.b64decode(st.signature) for st in rows}
            stamp_meta = {st.attachment_id: (st.stamped_at, st.key_fingerprint) for st in rows}
            d.state, d.updated_at = "building", self.clock.now()
            # Everything packed: the documents and their signature files (as progress counts).
            d.total_bytes = sum(a.size for a in docs) + sum(len(sig) for sig in stamps.values())
            name, number, title = d.name, case.number, case.title
            folder = d.folder
        if stamp_problem is not None:
            self._failed(item, f"the documents cannot be stamped: {stamp_problem}")
            raise PermanentError(stamp_problem)
        rule = folder_rule(p, folder)
        try:
            ensure_folder(rule)
        except FolderUnavailable as exc:
            raise TemporaryError(str(exc)) from None  # retried with back-off
        except (FolderError, OSError) as exc:
            self._failed(item, f"the receiving folder cannot be used: {exc}")
            raise PermanentError(str(exc)) from None
        if os.path.lexists(rule.path / name):  # published, but a crash lost the commit?
            self._found(item, rule, name, p)
            return
        self.staging_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = self.staging_root / name
        clear_staging(staging)
        staging.mkdir(mode=0o700)
        sigdir = self.staging_root / f".{name}.stamps"
        clear_staging(sigdir)
        sigdir.mkdir(mode=0o700)
        names = archive_names([a.filename for a in docs], name)
        members: list[Document] = []
        listing: list[dict[str, Any]] = []
        for a, arc in zip(docs, names, strict=True):
            path = self.publisher.stamper.blobs.path_for(a.sha256)
            # The bytes packed must be the ones stamped and stated in the signed manifest.
            members.append(Document(arc, path, sha256=a.sha256, size=a.size))
            entry: dict[str, Any] = {"name": arc, "size": a.size, "sha256": a.sha256}
            signature = stamps.get(a.id)
            if signature is not None:
                sig = sigdir / f"{arc}.sig"
                sig.write_bytes(signature)
                members.append(Document(f"stamps/{arc}.sig", sig, size=len(signature)))
                stamped_at, fp = stamp_meta[a.id]
                entry["stamp"] = {"signature": f"stamps/{arc}.sig",
                                  "stamped_at": stamped_at.isoformat(), "key_fingerprint": fp}
            listing.append(entry)
        password = new_password()

        def progress(done: int, total: int) -> None:
            log.info("delivery %s: %d of %d bytes packed", name, done, total)
            self.queue.extend(item)
            with self.store.transaction() as s2:
                row = s2.get(Delivery, item.ref_id)
                if row is not None:
                    row.done_bytes, row.total_bytes = done, total
                    row.updated_at = self.clock.now()

        try:
            result = build_archive(members, staging, name, p.volume_bytes, password,
                                   progress=progress, progress_every=self.progress_every)
        except ArchiveError as exc:  # e.g. a stored document altered since it was stamped
            clear_staging(sigdir)
            clear_staging(staging)
            self._failed(item, f"the delivery cannot be built: {exc}")
            raise PermanentError(str(exc)) from None
        clear_staging(sigdir)
        (staging / "password.bin").write_bytes(wrap_password(password, p.public_key.encode()))
        now = self.clock.now()
        expires = now + timedelta(days=p.retention_days)
        manifest = {
            "case_number": number, "title": title, "partner": p.name,
            "delivery": name, "created_at": now.isoformat(), "expires_at": expires.isoformat(),
            "documents": listing,
            "volumes": [{"name": v.name, "size": v.stat().st_size, "sha256": sha256_file(v).hex()}
                        for v in result.volumes],
            "password_file": "password.bin", "password_wrapping": "RSA-OAEP SHA-256",
            "partner_key_fingerprint": p.fingerprint,
            "stamp_key_fingerprint": self.key.fingerprint,
            "archive": {"format": "7z", "encryption": "AES-256, encrypted headers"},
        }
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        (staging / "manifest.json").write_bytes(body)
        (staging / "manifest.json.sig").write_bytes(self.key.sign_bytes(body))
        (staging / "company-stamp.pub.pem").write_text(self.key.public_pem(), encoding="ascii")
        ctx = self._context(p, rule, manifest)
        readme = self.publisher.wf.notifier.templates.render("partner_delivery", p.locale, ctx)
        (staging / "README.txt").write_text(readme.body, encoding="utf-8")
        if not self.queue.extend(item):
            raise TemporaryError("the work item is no longer ours (lease lost); not publishing")
        try:
            publish(staging, rule, name)
        except (FolderError, OSError) as exc:
            self._failed(item, f"publishing into the receiving folder failed: {exc}")
            raise PermanentError(str(exc)) from None
        self._published(item, item.ref_id, len(result.volumes), ctx, expires)

    def _context(self, p: PartnerView, rule: FolderRule,
                 manifest: dict[str, Any]) -> dict[str, Any]:
        """What the partner's mail and README.txt say, from the manifest itself."""
        return {"partner": p.title, "folder": str(rule.path), "delivery": manifest["delivery"],
                "folder_q": shlex.quote(str(rule.path)),  # shell-quoted, for the commands
                "documents": [{**doc, "q": shlex.quote(doc["name"])}
                              for doc in manifest["documents"]],
                "volumes": [v["name"] for v in manifest["volumes"]],
                "expires": manifest["expires_at"][:10],
                "stamp_fingerprint": manifest["stamp_key_fingerprint"],
                "number": manifest["case_number"], "title": manifest["title"]}

    def _found(self, item: Claimed, rule: FolderRule, name: str, p: PartnerView) -> None:
        """Something is already in the partner's folder under this delivery's name.

        An earlier attempt published it and a crash lost the commit: then it is a real
        folder owned as configured, with our manifest naming it, and it is finished (sealed,
        recorded, mailed). Anything else (a symlink, a file, a folder of another owner or
        without that manifest) is not ours: it is left untouched and the delivery fails.
        """
        try:
            manifest = json.loads(published_manifest(rule, name))
            if not isinstance(manifest, dict) or manifest.get("delivery") != name:
                raise FolderError("its manifest.json is not this delivery's")
            expires = datetime.fromisoformat(manifest["expires_at"])
            ctx = self._context(p, rule, manifest)
            seal(rule.path / name, rule)  # in case the crash came before its modes were set
        except (FolderError, OSError, ValueError, KeyError, TypeError) as exc:
            reason = (f"{rule.path / name} is already there and is not this delivery ({exc}); "
                      "it was left untouched")
            self._failed(item, reason)
            raise PermanentError(reason) from None
        self._published(item, item.ref_id, len(manifest["volumes"]), ctx, expires)

    def _published(self, item: Claimed, delivery_id: int, volumes: int,
                   ctx: dict[str, Any], expires: datetime) -> None:
        """Record, and tell the partner and the requester, in one transaction; the expiry
        recorded (and purged by) is the one the manifest states."""
        with self.store.transaction() as s:
            d = s.get(Delivery, delivery_id)
            assert d is not None
            case = s.get(Case, d.case_id)
            p = self.publisher.partners.by_id(s, d.partner_id)
            assert case is not None and p is not None
            now = self.clock.now()
            d.state, d.published_at, d.updated_at = "published", now, now
            d.expires_at = expires
            d.volumes = volumes or d.volumes
            d.done_bytes = d.total_bytes
            d.key_fingerprint = p.fingerprint
            wf = self.publisher.wf
            wf.record(s, case, "published", None,
                      detail=f"{d.name} in {p.title}'s folder: {d.volumes} volume(s), "
                      f"until {d.expires_at:%Y-%m-%d}")
            for address in p.emails:
                wf.notifier.to_address(s, "partner_delivery", address, p.locale, ctx, case)
            wf.tell_requester(s, case, "publication_notice",
                              {"outcome": "published", "partner": p.title,
                               "reason": f"until {d.expires_at:%Y-%m-%d}"})
            self.queue.complete(s, item)

    def _failed(self, item: Claimed, reason: str) -> None:
        with self.store.transaction() as s:
            d = s.get(Delivery, item.ref_id)
            case = s.get(Case, d.case_id) if d else None
            p = self.publisher.partners.by_id(s, d.partner_id) if d else None
            if d is None or case is None or d.state == "published":
                return  # never undo a publication another attempt completed
            d.state, d.updated_at = "failed", self.clock.now()
            d.detail = {**(d.detail or {}), "reason": reason}
            self.publisher.wf.record(s, case, "publication failed", None, detail=reason)
            self.publisher.tell(s, case, "failed", p.title if p else "?", reason)

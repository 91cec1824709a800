"""Which files become documents, and which document of a name a delivery carries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.cases.blobs import BlobStore
from daemon.cases.documents import Documents, describe, note, superseded_by
from daemon.clock import FrozenClock
from daemon.config import CasesConfig
from daemon.parsing.message import Attachment as MailAttachment
from daemon.store.models import Attachment

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_refusals(tmp_path: Path) -> None:
    docs = Documents(CasesConfig(max_document_bytes=10, blocked_extensions=["exe", ".LNK"]),
                     FrozenClock(T0), BlobStore(tmp_path))

    def why(name: str, data: bytes) -> tuple[str, str] | None:
        return docs.refusal(MailAttachment(name, "application/octet-stream", data))

    assert why("a.pdf", b"") == ("empty", "")
    assert why("a.pdf", b"x" * 11) == ("too_large", "10")
    assert why("a.pdf", b"x" * 10) is None
    assert why("Setup.EXE", b"MZ") == ("blocked", "exe")
    assert why("shortcut.lnk", b"L") == ("blocked", "lnk")
    assert why("exe", b"x") is None and why("drawing.tar.gz", b"x") is None


def doc(id_: int, filename: str, inbound: int | None, stage: str = "request") -> Attachment:
    return Attachment(id=id_, case_id=1, added_at=T0, filename=filename, content_type="x",
                      size=1, sha256=f"{id_:064x}", stage=stage, round=1, inbound_id=inbound)


def test_a_later_input_replaces_a_name_one_mail_never_replaces_its_own() -> None:
    first = [doc(1, "Quote.pdf", 10), doc(2, "quote.PDF", 10), doc(3, "notes.txt", 10)]
    later = [doc(4, "quote.pdf", 11, "correct"), doc(5, "review.pdf", 12, "decision:approve")]
    replaced = superseded_by([*first, *later])
    # The two files of one mail are both kept (a delivery names them quote.pdf, quote-2.pdf);
    # the correction replaces both, as the partner's disk sees one name (case ignored).
    assert {k: v.id for k, v in replaced.items()} == {1: 4, 2: 4}
    assert superseded_by(first) == {}
    # A name made plain for the partner's disk counts as the same name.
    assert {k: v.id for k, v in superseded_by(
        [doc(1, "a:b.pdf", 1), doc(2, "a_b.pdf", 2)]).items()} == {1: 2}


def test_history_line_says_what_was_and_was_not_added() -> None:
    notes = [note("a.pdf", 1234, "ab" * 32, "added"), note("b.pdf", 5, "cd" * 32, "already"),
             note("c.exe", 3, "", "refused", "blocked", "exe")]
    assert describe(notes) == (f"added a.pdf (1,234 bytes, sha256 {'ab' * 32}); already on the "
                               "case: b.pdf; not added: c.exe (file type .exe is not accepted)")

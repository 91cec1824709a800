"""Drop folders under attack: every input ends as a case or in rejected/ with its reason,
after one try; the log stays bounded however many rescans run; an unusable processed/ or
rejected/ disables the folder once (one ERROR, one mail) and it comes back by itself.

Scans are driven by hand with a FrozenClock, so "many rescans" costs no waiting."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.exc import OperationalError

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.intake import dropfolder
from daemon.intake.dropfolder import DropScanner
from daemon.intake.droplog import error_text
from daemon.intake.dropsafety import Entry, display_name
from daemon.store.models import AdminAlert, Attachment, Case, InboundMessage, OutboundMail
from tests.integration.test_dropfolders import FORM, refused_kinds
from tests.support import make_config

DEEP_JSON = '{"type": "travel", "notes": ' + "[" * 20_000 + "]" * 20_000 + "}"
LAUGHS = "type: travel\na: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh",
                                                                 strict=True))
LONG = "x" * 245 + ".toml"
HOSTILE_FILES: dict[str, tuple[bytes, str]] = {
    "deep.json": (DEEP_JSON.encode(), "nested too deeply"),
    "deep.toml": (b"type = 'travel'\nnotes = " + b"[" * 5000 + b"]" * 5000, "nested too deep"),
    "deep.yaml": (b"type: travel\nnotes: " + b"[" * 5000, "nested more than"),
    "laughs.yaml": (LAUGHS.encode(), "repeat more than 10,000 values"),
    "loop.yaml": (b"type: travel\nnotes: &n [*n]\n", "refers to a node that contains it"),
    "huge.json": (b'{"type": "travel", "amount": ' + b"9" * 5000 + b"}", "more than 100 digits"),
    "date.yaml": (b"type: travel\ndeparture_date: 2026-13-45\n", "month must be in 1..12"),
    "nul.toml": (b"type = 'travel'\x00\n", "not valid TOML"),
    "nul.json": (b'{"type": "travel", "title": "a\\u0000b"}', "U+0000"),
    "surrogate.json": (b'{"type": "travel", "title": "\\udc00"}', "U+DC00"),
    "bytes.yaml": (bytes(range(256)) * 4, "not valid YAML"),
    "empty.json": (b"", "not valid JSON"),
    LONG: (b"type = ", "not valid TOML"),
    "bad\x9bname.toml": (FORM.format(n=0).encode(), "control character"),
    "receipts.toml": ((FORM.format(n=0) + f"receipts = '{'9' * 5000}'\n").encode(),
                      "has more than 18 digits; check the number"),
}
HOSTILE_BUNDLES: dict[str, tuple[dict[str, bytes], str]] = {
    "sub": ({"form.toml": FORM.format(n=0).encode(), "inner/x.pdf": b"%PDF"}, "sub-folder"),
    "ctl": ({"form.toml": FORM.format(n=0).encode(), "a\x1bb.pdf": b"%PDF"},
            "control character"),
    "exe": ({"form.toml": FORM.format(n=0).encode(), "run.exe": b"MZ"}, ".exe are not accepted"),
    "two": ({"form.toml": b"type = 'travel'", "request.json": b"{}"}, "2 form files"),
}


@pytest.fixture
def hostile(tmp_path: Path, db_url: str) -> Iterator[tuple[App, FrozenClock, DropScanner]]:
    clock = FrozenClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    cfg = make_config(tmp_path, db_url, None, 0, drop={
        "stable_seconds": 1, "rescan_seconds": 1, "max_bytes": 100_000,
        "folders": [{"name": "t", "path": str(tmp_path / "drop"), "person": "tanaka"}]})
    app = App(cfg, clock=clock)
    app.prepare()
    (scanner,) = app.watcher.scanners
    scanner.path.mkdir(parents=True)
    yield app, clock, scanner
    app.stop()


def _rejected(base: Path) -> dict[str, str]:
    out = {}
    for err in (base / "rejected").glob("*.error.txt"):
        name = err.name.removesuffix(".error.txt").split("-", 1)[1]
        assert (base / "rejected" / err.name.removesuffix(".error.txt")).exists()
        if name.startswith("x" * 100):  # shortened to fit beside its stamp and .error.txt
            assert name.endswith("….toml") and len(os.fsencode(err.name)) <= 255
            name = LONG
        name = display_name(name)
        out[name] = err.read_text()
    return out


def _count(app: App, model: type, *where: ColumnElement[bool]) -> int:
    with app.store.transaction() as s:
        query: Select[int] = select(func.count()).select_from(model).where(*where)
        return int(s.scalar(query) or 0)


def test_hostile_folder_ends_bounded_and_complete(
        hostile: tuple[App, FrozenClock, DropScanner], tmp_path: Path,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    app, clock, scanner = hostile
    base = scanner.path
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = {name: words for name, (_, words) in HOSTILE_FILES.items()}
    for name, (data, _) in HOSTILE_FILES.items():
        (base / name).write_bytes(data)
    os.close(os.open(os.fsencode(base) + b"/\xff\xfe.toml", os.O_CREAT | os.O_WRONLY, 0o640))
    expected["\uf8f3\uf8f2.toml"] = "not valid UTF-8, Shift_JIS"
    with open(os.fsencode(base) + "/申請.toml".encode("cp932"), "wb") as fh:
        fh.write(b"type = ")  # a broken form whose name is Shift_JIS on disk
    expected["申請.toml"] = "申請.toml: not valid TOML"
    expected.update(refused_kinds(base, outside))
    for bundle, (files, words) in HOSTILE_BUNDLES.items():
        for rel, data in files.items():
            (base / bundle / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / bundle / rel).write_bytes(data)
        expected[bundle] = words
    # Bundles with a file still being written, or a lock file left behind.
    for bundle, extra in (("partial", "scan.pdf.part"), ("locked", ".~lock.form.toml#")):
        (base / bundle).mkdir()
        (base / bundle / "form.toml").write_text(FORM.format(n=2 if bundle == "partial" else 0))
        (base / bundle / extra).write_bytes(b"%PDF half")
    expected["locked"] = "'.~lock.form.toml#', which looks like a file being written"
    (base / "empty").mkdir()  # made first, to be filled later: waited for, then refused
    expected["empty"] = "the folder is empty, and nothing in it changed for 60 minutes"
    junk = random.Random(11)  # many more of the kind a broken tool leaves behind
    for i in range(150):
        suffix = (".toml", ".json", ".yaml")[i % 3]
        (base / f"junk{i:03}{suffix}").write_bytes(junk.randbytes(junk.randint(0, 300)))
        expected[f"junk{i:03}{suffix}"] = f"junk{i:03}{suffix}"
    (base / "good.toml").write_text(FORM.format(n=1))
    (base / "vanish.toml").write_text(FORM.format(n=0))
    (base / "bug.toml").write_text(FORM.format(n=0))
    expected["bug.toml"] = "ringi could not read this input (RuntimeError)"
    real_take = scanner.taker.take

    def take(entry: Entry) -> str | None:
        """Fakes what cannot be arranged from outside: a file deleted between the look and
        the read, and a bug in a taker."""
        if entry.name == "vanish.toml":
            os.unlink(base / "vanish.toml")
        if entry.name == "bug.toml":
            raise RuntimeError("a bug")
        return real_take(entry)

    monkeypatch.setattr(scanner.taker, "take", take)
    # A bug even in rejecting: the input is set aside and tried again minutes later.
    (base / "stuck.toml").write_text("type = ")
    expected["stuck.toml"] = "not valid TOML"
    unwritable = {"stuck.toml"}

    def text_of(entry: str, *args: str) -> str:
        if entry in unwritable:
            raise RuntimeError("a bug in writing the reason")
        return error_text(entry, *args)

    monkeypatch.setattr(dropfolder, "error_text", text_of)
    caplog.set_level(logging.INFO, logger="daemon.intake")
    counts = []
    for i in range(80):
        (base / "changing.toml").write_text(FORM.format(n=3) + f"# edit {i}\n")
        if i == 40:
            os.rename(base / "partial" / "scan.pdf.part", base / "partial" / "scan.pdf")
        scanner.scan()
        clock.advance(timedelta(seconds=0.5))
        counts.append(len(caplog.records))
    # After the first rounds, nothing more is said: nothing is retried or looping.
    # (the bundle "partial" is taken after its .part file was renamed at round 40).
    assert counts[39] == counts[10] and counts[-1] == counts[45] == counts[10] + 1, \
        caplog.text[-3000:]
    assert len(caplog.records) <= 2 * len(expected) + 10
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records
            if r.levelno >= logging.ERROR] == \
        ["could not take bug.toml", "cannot handle stuck.toml; trying again in 0:05:00"]
    # The changing file is waited for (not refused, not logged); it is taken once it stops.
    assert (base / "changing.toml").exists()
    assert (base / "stuck.toml").exists()
    unwritable.clear()  # the bug fixed: the next slow retry rejects it
    clock.advance(timedelta(hours=2))  # long after: the lock file's bundle was abandoned
    for _ in range(3):
        scanner.scan()
        clock.advance(timedelta(seconds=2))
    rejected = _rejected(base)
    for name, words in expected.items():
        assert name in rejected, (name, sorted(rejected))
        assert words in rejected[name], (name, rejected[name])
    assert set(rejected) == set(expected)
    assert sorted(p.name for p in base.iterdir()) == ["processed", "rejected"]
    assert len(list((base / "processed").iterdir())) == 3  # good, partial, changing
    app.inbound_runner.drain()
    with app.store.transaction() as s:
        titles = sorted(s.scalars(select(Case.title)))
        attachments = list(s.scalars(select(Attachment.filename)))
    assert titles == ["Osaka visit 1", "Osaka visit 2", "Osaka visit 3"]
    assert attachments == ["scan.pdf"]  # the refused bundles stored nothing
    assert (outside / "secret.toml").read_text() == FORM.format(n=0)
    # The bug was told to the administrator once.
    assert _count(app, AdminAlert, AdminAlert.key.like("drop-unexpected:%")) == 1


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _rescan(scanner: DropScanner, clock: FrozenClock, times: int, step: float) -> set[int]:
    """Scan `times` times, `step` seconds apart; the set of "still settling" counts."""
    pending = set()
    for _ in range(times):
        pending.add(scanner.scan())
        clock.advance(timedelta(seconds=step))
    return pending


def test_unusable_folders_disable_once_and_come_back(
        hostile: tuple[App, FrozenClock, DropScanner], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    app, clock, scanner = hostile
    base = scanner.path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, base / "processed")
    (base / "trip.toml").write_text(FORM.format(n=1))
    caplog.set_level(logging.INFO, logger="daemon")
    # 100 s of half-second rescans: nothing taken or waited for, one ERROR, one mail.
    assert _rescan(scanner, clock, 200, 0.5) == {0}
    assert len(_errors(caplog)) == 1, caplog.text
    assert "is disabled: processed/ is a symbolic link" in _errors(caplog)[0]
    assert _count(app, OutboundMail, OutboundMail.template == "admin_alert") == 1
    assert (base / "trip.toml").exists() and list(elsewhere.iterdir()) == []
    # Fixed: at the next slow retry the folder comes back by itself, once.
    os.unlink(base / "processed")
    clock.advance(scanner.retry_unusable)
    _rescan(scanner, clock, 4, 1)
    assert not (base / "trip.toml").exists()
    assert next(p.name for p in (base / "processed").iterdir()).endswith("-trip.toml")
    assert len([r for r in caplog.records if "usable again" in r.getMessage()]) == 1
    # rejected/ replaced by a file: a new reason, a new ERROR; the administrator was
    # already told about this folder today (AdminAlerts: one mail per key and day).
    shutil.rmtree(base / "rejected")
    (base / "rejected").write_text("not a folder")
    (base / "bad.toml").write_text("type = ")
    assert _rescan(scanner, clock, 100, 0.5) == {0}
    assert len(_errors(caplog)) == 2 and "rejected is not a folder" in _errors(caplog)[1]
    assert (base / "bad.toml").exists()
    with app.store.transaction() as s:
        alert = s.get(AdminAlert, f"drop-folder:{base}")
        assert alert is not None and alert.suppressed >= 1
    os.unlink(base / "rejected")
    clock.advance(scanner.retry_unusable)
    _rescan(scanner, clock, 2, 1)
    assert len(list((base / "rejected").glob("*bad.toml.error.txt"))) == 1
    # The drop folder itself replaced by a link: not followed, not even to create a folder.
    (elsewhere / "trip.toml").write_text(FORM.format(n=2))
    os.rename(base, tmp_path / "moved")
    os.symlink(elsewhere, base)
    assert _rescan(scanner, clock, 50, 1) == {0}
    assert sorted(p.name for p in elsewhere.iterdir()) == ["trip.toml"]
    assert len(_errors(caplog)) == 3 and "the folder is a symbolic link" in _errors(caplog)[2]
    assert _count(app, InboundMessage) == 1


def test_bundle_waits_for_every_file(hostile: tuple[App, FrozenClock, DropScanner]) -> None:
    """A bundle is taken only when no file in it is still being written and all of them
    stood still for stable_seconds."""
    app, clock, scanner = hostile
    bundle = scanner.path / "receipts"
    bundle.mkdir()
    (bundle / "form.toml").write_text(FORM.format(n=1))
    (bundle / "a.pdf.part").write_bytes(b"%PDF")
    (bundle / "~$memo.docx").write_bytes(b"lock")
    for _ in range(10):
        assert scanner.scan() == 1
        clock.advance(timedelta(seconds=5))
    os.rename(bundle / "a.pdf.part", bundle / "a.pdf")
    assert scanner.scan() == 1
    clock.advance(timedelta(seconds=5))
    assert scanner.scan() == 1  # the Office lock file is still there
    os.unlink(bundle / "~$memo.docx")
    assert scanner.scan() == 1
    clock.advance(timedelta(seconds=0.5))
    with open(bundle / "a.pdf", "ab") as fh:  # one file still growing: wait again
        fh.write(b" more")
    assert scanner.scan() == 1
    clock.advance(timedelta(seconds=0.9))
    assert scanner.scan() == 1
    clock.advance(timedelta(seconds=0.2))
    assert scanner.scan() == 0
    assert not bundle.exists()
    app.inbound_runner.drain()
    with app.store.transaction() as s:
        att = s.scalars(select(Attachment)).one()
    assert (att.filename, att.size) == ("a.pdf", len(b"%PDF more"))


def test_store_outage_keeps_inputs_and_says_so_rarely(
        hostile: tuple[App, FrozenClock, DropScanner], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database going away is the one failure that is not the input's: every input
    stays in the folder (none rejected), one WARNING per rescan interval, all taken after.
    The outage is faked (a stopped server cannot be arranged per test); the error is the
    one SQLAlchemy raises for a lost connection."""
    app, clock, scanner = hostile
    base = scanner.path
    for n in range(5):
        (base / f"trip{n}.toml").write_text(FORM.format(n=n))

    @contextlib.contextmanager
    def down() -> Iterator[None]:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        yield  # pragma: no cover

    monkeypatch.setattr(app.store, "transaction", down)
    caplog.set_level(logging.INFO, logger="daemon.intake")
    _rescan(scanner, clock, 40, 0.25)  # 10 s, rescan_seconds = 1
    warnings = [r for r in caplog.records if "cannot take inputs now" in r.getMessage()]
    assert 1 <= len(warnings) <= 11, caplog.text
    assert len(caplog.records) == len(warnings)
    assert not list((base / "rejected").iterdir()) and not list((base / "processed").iterdir())
    monkeypatch.undo()
    _rescan(scanner, clock, 3, 1)
    assert len(list((base / "processed").iterdir())) == 5
    assert _count(app, InboundMessage) == 5

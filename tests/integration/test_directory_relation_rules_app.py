"""Every way a directory file comes in judges its relations by the configured rules:
`ringi directory import` (and `--dry-run`), the configured file at start, a reorganisation
plan. (The admin drop folder: tests/integration/test_dropfolders.py.)

Real store: SQLite and, when RINGI_TEST_DATABASE_URL is set, PostgreSQL (``db_url``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.directory.loader import DirectoryFileError
from daemon.store.directory_models import ApprovalRelation
from daemon.store.models import DirectoryImport
from daemon.store.reorg_models import Reorganisation
from tests.support import ROOT, free_port, make_config, ringi, write_config

SAMPLE = ROOT / "samples" / "organisation.toml"
# tanaka is staff (rank 10): not qualified to approve under the default approve_min_rank 20
STAFF_PROXY = ('\n[[relations]]\napprover = "tanaka"\nperson = "sato"\nkind = "proxy"\n'
               "valid_from = 2026-01-01\n")
REASON = "relation #4: tanaka is not qualified to approve"


def org(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return path


def bad_line(text: str) -> int:
    return text.count("\n") - STAFF_PROXY.count("\n") + 2


def counts(app: App) -> tuple[int, int, int]:
    with app.store.transaction() as s:
        return (s.scalar(select(func.count(ApprovalRelation.id))) or 0,
                s.scalar(select(func.count(DirectoryImport.id))) or 0,
                s.scalar(select(func.count(Reorganisation.id))) or 0)


def test_ringi_directory_import_refuses_and_dry_run_too(tmp_path: Path, db_url: str) -> None:
    app = App(make_config(tmp_path, db_url, None, free_port()), clock=FrozenClock())
    app.prepare()
    cfg_file = write_config(app.cfg, tmp_path)
    text = SAMPLE.read_text(encoding="utf-8") + STAFF_PROXY
    path = org(tmp_path, text)
    before = counts(app)
    for args in (("directory", "import", str(path)),
                 ("directory", "import", "--dry-run", str(path))):
        result = ringi(cfg_file, *args)
        assert result.exit_code == 1, result.output
        assert f"{path}:{bad_line(text)}: {REASON}" in result.stderr
        assert "nothing imported" in result.stderr
    assert counts(app) == before
    # the person's qualification in the file makes the same line acceptable
    path = org(tmp_path, text.replace('id = "tanaka"\n', 'id = "tanaka"\nmay_approve = true\n'))
    result = ringi(cfg_file, "directory", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "~ person tanaka (may_approve)" in result.stdout
    assert "+ relation tanaka->person sato proxy 2026-01-01.." in result.stdout


def test_the_configured_file_is_refused_at_start(tmp_path: Path, db_url: str) -> None:
    text = SAMPLE.read_text(encoding="utf-8") + STAFF_PROXY
    path = org(tmp_path, text)
    app = App(make_config(tmp_path, db_url, None, free_port(), directory={"file": str(path)}),
              clock=FrozenClock())
    with pytest.raises(DirectoryFileError) as err:
        app.prepare()
    assert err.value.errors == [f"{path}:{bad_line(text)}: {REASON}"]


def test_the_configured_rank_decides(tmp_path: Path, db_url: str) -> None:
    text = SAMPLE.read_text(encoding="utf-8") + STAFF_PROXY
    app = App(make_config(tmp_path, db_url, None, free_port(),
                          directory={"file": str(org(tmp_path, text))},
                          relations={"approve_min_rank": 10}), clock=FrozenClock())
    app.prepare()  # staff may approve here
    with app.store.transaction() as s:
        assert s.scalar(select(ApprovalRelation).where(ApprovalRelation.approver_id == "tanaka"))


def test_a_reorganisation_plan_is_refused_and_nothing_planned(tmp_path: Path,
                                                              db_url: str) -> None:
    app = App(make_config(tmp_path, db_url, None, free_port()), clock=FrozenClock())
    app.prepare()
    text = SAMPLE.read_text(encoding="utf-8") + STAFF_PROXY
    path = org(tmp_path, text)
    before = counts(app)
    with pytest.raises(DirectoryFileError) as err:
        app.reorganisations.plan(path, None, "admin")
    assert err.value.errors == [f"{path}:{bad_line(text)}: {REASON}"]
    assert counts(app) == before

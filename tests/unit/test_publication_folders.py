"""Receiving folders: refused when unsafe, published into atomically, purged exactly."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from daemon.publication.folders import (
    FolderError,
    FolderRule,
    FolderUnavailable,
    check_folder,
    ensure_folder,
    publish,
    published_manifest,
    remove_delivery,
    seal,
)

OTHER_UID, OTHER_GID = 54321, 54322

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="setting owners needs root (as on the test machine)")


def folder(tmp_path: Path, mode: int = 0o750, uid: int = OTHER_UID,
           gid: int = OTHER_GID) -> FolderRule:
    path = tmp_path / "share" / "kobe"
    path.mkdir(parents=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return FolderRule(path, str(OTHER_UID), str(OTHER_GID), 0o750)


def staged(tmp_path: Path, name: str = "stage", size: int = 1000) -> Path:
    d = tmp_path / "transmission" / name
    d.mkdir(parents=True)
    (d / "D.7z.001").write_bytes(os.urandom(size))
    (d / "manifest.json").write_text("{}")
    return d


@pytest.mark.parametrize(("mode", "uid", "gid", "message"), [
    (0o770, OTHER_UID, OTHER_GID, "writable by group or others (mode 0770)"),
    (0o757, OTHER_UID, OTHER_GID, "writable by group or others"),
    (0o750, 0, OTHER_GID, "is owned by uid 0, not 54321"),
    (0o750, OTHER_UID, 0, "has group gid 0, not 54322"),
    (0o700, OTHER_UID, OTHER_GID, "has mode 0700, configured 0750"),
])
def test_unsafe_folders_are_refused(tmp_path: Path, mode: int, uid: int, gid: int,
                                    message: str) -> None:
    rule = folder(tmp_path, mode, uid, gid)
    with pytest.raises(FolderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_folder(rule)
    with pytest.raises(FolderError):
        publish(staged(tmp_path), rule, "R-1-kobe-1")
    assert os.listdir(rule.path) == []  # nothing was written


def test_symlinked_folder_or_path_is_refused(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    link = tmp_path / "link-to-kobe"
    link.symlink_to(rule.path)
    with pytest.raises(FolderError, match="symbolic link"):
        check_folder(FolderRule(link, rule.owner, rule.group, rule.mode))
    (tmp_path / "via").symlink_to(tmp_path / "share")
    with pytest.raises(FolderError, match="symbolic link"):
        check_folder(FolderRule(tmp_path / "via" / "kobe", rule.owner, rule.group, rule.mode))


def test_publish_moves_whole_delivery_with_configured_permissions(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    stage = staged(tmp_path)
    final = publish(stage, rule, "R-2026-000001-kobe-1")
    assert not stage.exists() and final == rule.path / "R-2026-000001-kobe-1"
    st = os.lstat(final)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_GID, 0o750)
    for f in final.iterdir():
        fs = os.lstat(f)
        assert (fs.st_uid, fs.st_gid, stat.S_IMODE(fs.st_mode)) == (OTHER_UID, OTHER_GID,
                                                                    0o640)


def test_a_planted_symlink_with_the_delivery_name_is_not_followed(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (rule.path / "R-1-kobe-7").symlink_to(target)
    with pytest.raises(FolderError, match="already exists"):
        publish(staged(tmp_path), rule, "R-1-kobe-7")
    assert os.listdir(target) == []  # nothing went through the link
    assert remove_delivery(rule, "R-1-kobe-7") is True  # purge removes the link itself
    assert target.is_dir() and not os.path.lexists(rule.path / "R-1-kobe-7")


def test_purge_removes_exactly_one_delivery_and_never_follows_links(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    keep = publish(staged(tmp_path, "a"), rule, "R-1-kobe-1")
    gone = publish(staged(tmp_path, "b"), rule, "R-2-kobe-2")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "file").write_text("keep me")
    (gone / "planted").symlink_to(outside)
    assert remove_delivery(rule, "R-2-kobe-2") is True
    assert not gone.exists() and keep.is_dir()
    assert (outside / "file").read_text() == "keep me"
    assert remove_delivery(rule, "R-2-kobe-2") is False


def test_concurrent_reader_never_sees_a_partial_delivery(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    seen_partial: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            for name in os.listdir(rule.path):
                files = set(os.listdir(rule.path / name)) if (rule.path / name).is_dir() \
                    else set()
                if name.startswith("R-") and files != {"D.7z.001", "manifest.json"}:
                    seen_partial.append(f"{name}: {sorted(files)}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(60):
            publish(staged(tmp_path, f"s{i}", 200_000), rule, f"R-{i}-kobe-{i}")
    finally:
        done.set()
        t.join()
    assert seen_partial == []
    assert len(os.listdir(rule.path)) == 60


def test_missing_folder_is_created_as_configured(tmp_path: Path) -> None:
    rule = FolderRule(tmp_path / "new" / "partner", str(OTHER_UID), str(OTHER_GID), 0o750)
    with pytest.raises(FolderUnavailable, match="share not mounted"):
        ensure_folder(rule)  # the share itself is missing: never build a fake one
    (tmp_path / "new").mkdir()
    ensure_folder(rule)
    st = os.lstat(rule.path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_GID, 0o750)


def test_staging_on_another_file_system_still_appears_at_once(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    rule = folder(tmp_path)
    stage = shm / f"ringi-test-{os.getpid()}"
    stage.mkdir()
    try:
        (stage / "D.7z.001").write_bytes(b"x" * 1000)
        final = publish(stage, rule, "R-9-kobe-9")
        assert sorted(os.listdir(final)) == ["D.7z.001"] and not stage.exists()
        assert [n for n in os.listdir(rule.path) if n.startswith(".")] == []
        assert stat.S_IMODE(os.lstat(final).st_mode) == 0o750
        fs = os.lstat(final / "D.7z.001")
        assert (fs.st_uid, fs.st_gid, stat.S_IMODE(fs.st_mode)) == (OTHER_UID, OTHER_GID,
                                                                    0o640)
    finally:
        if stage.exists():
            import shutil

            shutil.rmtree(stage)


def owners(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, st.st_mode


def test_seal_refuses_links_and_never_changes_what_they_point_to(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (victim / "f").write_text("keep")
    os.chmod(victim / "f", 0o600)
    watched = [victim, victim / "f"]
    before = [owners(p) for p in watched]
    top = tmp_path / "top-link"
    top.symlink_to(victim)
    with pytest.raises(FolderError, match="not a folder"):
        seal(top, rule)
    inner = staged(tmp_path)
    (inner / "zz-link").symlink_to(victim / "f")
    (inner / "sub").mkdir()
    (inner / "sub" / "dir-link").symlink_to(victim)
    with pytest.raises(FolderError, match="symbolic link in a delivery"):
        seal(inner, rule)
    assert [owners(p) for p in watched] == before
    os.unlink(inner / "zz-link")
    with pytest.raises(FolderError, match="sub/dir-link is a symbolic link"):
        seal(inner, rule)
    assert [owners(p) for p in watched] == before
    os.unlink(inner / "sub" / "dir-link")
    seal(inner, rule)  # a clean delivery is sealed as configured, sub-folders too
    for p in (inner, inner / "sub"):
        assert owners(p) == (OTHER_UID, OTHER_GID, stat.S_IFDIR | 0o750)
    assert owners(inner / "manifest.json") == (OTHER_UID, OTHER_GID, stat.S_IFREG | 0o640)


def test_published_manifest_is_read_only_from_a_delivery_of_ours(tmp_path: Path) -> None:
    rule = folder(tmp_path)
    final = publish(staged(tmp_path), rule, "R-1-kobe-1")
    assert published_manifest(rule, "R-1-kobe-1") == b"{}"
    (rule.path / "R-2-kobe-2").symlink_to(final)
    with pytest.raises(FolderError, match="it is a symbolic link"):
        published_manifest(rule, "R-2-kobe-2")
    (rule.path / "R-3-kobe-3").write_text("{}")
    with pytest.raises(FolderError, match="it is not a folder"):
        published_manifest(rule, "R-3-kobe-3")
    os.mkdir(rule.path / "R-4-kobe-4")  # root's, not the configured owner's
    with pytest.raises(FolderError, match=f"owned by uid 0, not {OTHER_UID}"):
        published_manifest(rule, "R-4-kobe-4")
    os.chown(rule.path / "R-4-kobe-4", OTHER_UID, OTHER_GID)
    with pytest.raises(FolderError, match=r"it has no manifest\.json"):
        published_manifest(rule, "R-4-kobe-4")
    (rule.path / "R-4-kobe-4" / "manifest.json").symlink_to(final / "manifest.json")
    with pytest.raises(FolderError, match=r"its manifest\.json is a symbolic link"):
        published_manifest(rule, "R-4-kobe-4")
    os.unlink(rule.path / "R-4-kobe-4" / "manifest.json")
    os.mkfifo(rule.path / "R-4-kobe-4" / "manifest.json")
    with pytest.raises(FolderError, match=r"its manifest\.json is not a regular file"):
        published_manifest(rule, "R-4-kobe-4")

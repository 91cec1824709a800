"""Partners' receiving folders: checked before every write, published into atomically.

A delivery is built in the transmission folder and appears in the partner's folder by one
rename, so a partner never sees half of it. Nothing here follows a symlink: every path
component is opened with O_NOFOLLOW relative to the descriptor of the one before
(`fsaccess`), and every name inside the folder is handled relative to the folder's
descriptor. A folder that is group- or world-writable, or owned by someone other than
configured, is refused rather than fixed; the one exception is a folder ringi itself left
half set up (created, still private, but without its group or mode), which is finished.

The supported model needs no capabilities: the folder is owned by the user ringi runs as,
its group is the partner's group (ringi a member of it, `SupplementaryGroups=`), mode 0750
(or 2750). ringi writes; the partner's accounts read through the group.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.publication.fsaccess import (
    DIR_FLAGS,
    UNIT,
    FolderError,
    FolderUnavailable,
    gid_of,
    group_name,
    me,
    open_folder,
    open_in,
    open_parent,
    privilege_problems,
    readable,
    uid_of,
    user_name,
)

__all__ = ["FolderError", "FolderRule", "FolderUnavailable", "check_folder", "ensure_folder",
           "gid_of", "publish", "published_manifest", "remove_delivery", "seal", "uid_of"]

log = logging.getLogger(__name__)
OURS = ".ringi-"  # hidden names ringi uses inside a receiving folder and next to it


@dataclass(frozen=True)
class FolderRule:
    path: Path
    owner: str  # user name or numeric id; "self" (or "") = the user ringi runs as
    group: str  # group name or numeric id; "self" (or "") = ringi's own group
    mode: int  # exact permission bits the folder must have, e.g. 0o750


def chown_args(uid: int, gid: int) -> tuple[int, int]:
    """fchown arguments that change only what must change (-1: leave as it is), so an
    unprivileged ringi never asks for a change of owner it could not make."""
    return (-1 if uid == os.geteuid() else uid), gid


def folder_problems(rule: FolderRule, st: os.stat_result) -> list[str]:
    """What is wrong with the folder as found, each with the command that fixes it."""
    path = rule.path
    if not stat.S_ISDIR(st.st_mode):
        return [f"{path} is not a folder"]
    uid, gid = uid_of(rule.owner), gid_of(rule.group)
    mode = stat.S_IMODE(st.st_mode)
    problems = []
    if mode & 0o022:
        problems.append(f"{path} is writable by group or others (mode {mode:04o}); refusing "
                        f"to publish into it; fix: `chmod {rule.mode:04o} {path}`")
    elif mode != rule.mode:
        problems.append(f"{path} has mode {mode:04o}, configured {rule.mode:04o}; fix: "
                        f"`chmod {rule.mode:04o} {path}`")
    if st.st_uid != uid:
        problems.append(f"{path} is owned by uid {st.st_uid}, not {rule.owner or uid}; fix "
                        f"(as root): `chown {user_name(uid)} {path}`")
    if st.st_gid != gid:
        problems.append(f"{path} has group gid {st.st_gid}, not {rule.group or gid}; fix "
                        f"(as root): `chgrp {group_name(gid)} {path}`")
    return problems


def _entries(fd: int) -> list[str]:
    rfd = readable(fd)
    try:
        return os.listdir(rfd)
    finally:
        os.close(rfd)


def half_set_up(rule: FolderRule, fd: int, st: os.stat_result) -> bool:
    """A folder an interrupted or refused creation left behind: ringi's own, still private
    (nobody else could have entered it), holding nothing but ringi's hidden leftovers.
    Finishing it (group, mode) exposes nothing that was not meant for the partner."""
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() == uid_of(rule.owner)
            and not stat.S_IMODE(st.st_mode) & 0o077
            and all(n.startswith(OURS) for n in _entries(fd)))


def _finish(fd: int, rule: FolderRule) -> None:
    rfd = readable(fd)
    try:
        os.fchown(rfd, *chown_args(uid_of(rule.owner), gid_of(rule.group)))
        os.fchmod(rfd, rule.mode)  # after the group: a chown may clear set-id bits
    finally:
        os.close(rfd)


def _open_checked(rule: FolderRule) -> tuple[int, os.stat_result]:
    """The folder's O_PATH descriptor, checked as it must be before anything is written."""
    fd = open_folder(rule.path)
    st = os.fstat(fd)
    problems = folder_problems(rule, st)
    if problems:
        os.close(fd)
        raise FolderError("; ".join(problems))
    return fd, st


def check_folder(rule: FolderRule) -> os.stat_result:
    """The folder as it must be before anything is written into it."""
    fd, st = _open_checked(rule)
    os.close(fd)
    return st


def os_problem(exc: OSError, what: str, where: Path) -> FolderError:
    """An operating-system refusal as the change that lets ringi do `what` in `where`."""
    if exc.errno == errno.EROFS:
        return FolderError(
            f"ringi cannot {what}: {where} is read-only for it; fix: add "
            f"`ReadWritePaths={where}` (or the share above it) to the [Service] section of "
            f"{UNIT} (`systemctl edit ringi`), then `systemctl restart ringi`")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FolderError(
            f"ringi (user {me()}) may not {what}: {where} is not writable for it; fix: "
            f"`{where}` must be owned by {me()} (as root: `chown {me()} {where}`)")
    return FolderError(f"ringi cannot {what} in {where}: {exc.strerror or exc}")


def creation_problem(exc: OSError, rule: FolderRule) -> FolderError:
    """Why ringi could not make a folder in the folder's parent, and what to do instead."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FolderError(
            f"ringi (user {me()}) may not create {rule.path}: its parent is not writable "
            f"for it; fix: create the folder once, as root: `install -d -o "
            f"{user_name(uid_of(rule.owner))} -g {group_name(gid_of(rule.group))} -m "
            f"{rule.mode:04o} {rule.path}`")
    return os_problem(exc, f"create {rule.path}", rule.path.absolute().parent)


def _create(parent: int, name: str, rule: FolderRule) -> None:
    """Make the folder under a hidden name, give it its group and mode, then rename it into
    place: it appears finished or not at all. A refusal removes the hidden folder again."""
    hidden = f"{OURS}new-{name}"
    try:
        os.mkdir(hidden, 0o700, dir_fd=parent)
    except OSError as exc:
        raise creation_problem(exc, rule) from None
    try:
        fd = os.open(hidden, DIR_FLAGS, dir_fd=parent)
        try:
            _finish(fd, rule)
        except OSError as exc:
            raise FolderError(
                f"ringi (user {me()}) may not give {rule.path} the group "
                f"{group_name(gid_of(rule.group))} and mode {rule.mode:04o}: "
                f"{exc.strerror or exc}") from None
        finally:
            os.close(fd)
        os.rename(hidden, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        shutil.rmtree(hidden, dir_fd=parent, ignore_errors=True)
        raise
    _fsync_dir(parent)
    log.info("receiving folder %s created (%s:%s, mode %04o)", rule.path,
             user_name(uid_of(rule.owner)), group_name(gid_of(rule.group)), rule.mode)


STALE_SECONDS = 60  # a hidden creation folder older than this was left by a crash


def _clear_leftover(parent: int, hidden: str, path: Path) -> None:
    """Remove ringi's own hidden creation folder left by a crash; a fresh one belongs to a
    creation under way (another daemon): wait for it rather than pull it away."""
    try:
        st = os.stat(hidden, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise FolderError(f"{path.parent / hidden} is in the way and is not ringi's; "
                          "remove it")
    if time.time() - st.st_mtime < STALE_SECONDS:
        raise FolderUnavailable(f"{path} is being created by another attempt")
    shutil.rmtree(hidden, dir_fd=parent, ignore_errors=True)


def ensure_folder(rule: FolderRule) -> None:
    """Make the folder usable for a delivery: create a missing one as configured (first
    delivery on a new share), finish one a refused attempt left half set up, and check
    every other one, never changing it. Each refusal says what to change."""
    problems = privilege_problems(rule.path, rule.owner, rule.group)
    if problems:
        raise FolderError("; ".join(problems))
    parent, name = open_parent(rule.path)
    try:
        _clear_leftover(parent, f"{OURS}new-{name}", rule.path)
        try:
            fd = open_in(parent, name, rule.path.absolute())
        except FileNotFoundError:
            try:
                _create(parent, name, rule)
            except OSError as exc:
                raise os_problem(exc, f"create {rule.path}", rule.path) from None
            return
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        problems = folder_problems(rule, st)
        if problems and half_set_up(rule, fd, st):
            try:
                _finish(fd, rule)
            except OSError as exc:
                raise os_problem(exc, f"finish setting up {rule.path}", rule.path) from None
            log.warning("receiving folder %s was left half set up (%s); finished", rule.path,
                        "; ".join(p.split("; fix")[0] for p in problems))
        elif problems:
            raise FolderError("; ".join(problems))
    finally:
        os.close(fd)


def _file_mode(folder_mode: int) -> int:
    """Files readable by whoever may read the folder, writable by nobody else."""
    return (folder_mode & 0o750) & ~0o111 | 0o600


def _seal_dir(fd: int, where: str, owner: tuple[int, int], dir_mode: int,
              file_mode: int) -> None:
    """Owners and modes through descriptors opened with O_NOFOLLOW: nothing here can be
    redirected by a link, even one planted while the walk runs."""
    for entry in os.scandir(fd):
        path = f"{where}/{entry.name}"
        if entry.is_symlink():
            raise FolderError(f"{path} is a symbolic link in a delivery; ringi does not "
                              "follow links")
        if entry.is_dir(follow_symlinks=False):
            child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            try:
                _seal_dir(child, path, owner, dir_mode, file_mode)
            finally:
                os.close(child)
            continue
        if not entry.is_file(follow_symlinks=False):
            raise FolderError(f"{path} is not a regular file")
        ffd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                      dir_fd=fd)
        try:
            if not stat.S_ISREG(os.fstat(ffd).st_mode):
                raise FolderError(f"{path} is not a regular file")
            os.fchown(ffd, *owner)
            os.fchmod(ffd, file_mode)
        finally:
            os.close(ffd)
    os.fchown(fd, *owner)
    os.fchmod(fd, dir_mode)


def _seal_fd(fd: int, where: str, rule: FolderRule) -> None:
    owner = chown_args(uid_of(rule.owner), gid_of(rule.group))
    _seal_dir(fd, where, owner, rule.mode & 0o750, _file_mode(rule.mode))


def seal(staging: Path, rule: FolderRule) -> None:
    """Give a delivery folder the folder's owner and group, read-only for the partner.

    A symlink, at the top, on the way there or anywhere inside, is refused, never
    followed: `seal` may run on a folder found in the partner's folder (the crash recovery
    in the builder).
    """
    parent, name = open_parent(staging)
    try:
        try:
            fd = open_in(parent, name, staging, DIR_FLAGS)
        except (FileNotFoundError, FolderError):
            raise FolderError(f"{staging} is not a folder (a symbolic link?); not touched") \
                from None
    finally:
        os.close(parent)
    try:
        _seal_fd(fd, str(staging), rule)
    finally:
        os.close(fd)


def _fsync_dir(fd: int) -> None:
    try:
        rfd = readable(fd)
    except OSError:
        return  # a parent ringi may enter but not read: the rename is durable soon anyway
    try:
        os.fsync(rfd)
    finally:
        os.close(rfd)


def _fsync_tree(root: str) -> None:
    """Everything on disk before the rename makes it visible (a crash must not leave a
    published delivery with missing bytes)."""
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def publish(staging: Path, rule: FolderRule, name: str) -> Path:
    """Move the staged delivery into the folder under `name`, atomically, never replacing.

    Same file system: one rename. Otherwise a private copy inside the folder (mode 0700,
    unreadable to the partner) is renamed into place once complete.
    """
    if "/" in name or name.startswith("."):
        raise FolderError(f"bad delivery name {name!r}")
    problems = privilege_problems(rule.path, rule.owner, rule.group)
    if problems:
        raise FolderError("; ".join(problems))
    fd, st = _open_checked(rule)
    try:
        seal(staging, rule)
        _fsync_tree(str(staging))
        try:
            os.lstat(name, dir_fd=fd)
            raise FolderError(f"{rule.path / name} already exists; a delivery never "
                              "replaces anything")
        except FileNotFoundError:
            pass
        if os.stat(staging).st_dev == st.st_dev:
            os.rename(staging, name, dst_dir_fd=fd)
        else:
            _copy_in(staging, rule, fd, name)
    except PermissionError as exc:
        raise os_problem(exc, "publish", rule.path) from None
    finally:
        try:
            _fsync_dir(fd)
        finally:
            os.close(fd)
    shutil.rmtree(staging, ignore_errors=True)  # published: leftovers only cost disk
    return rule.path / name


def _copy_in(staging: Path, rule: FolderRule, fd: int, name: str) -> None:
    """Copied into a private folder (0700 until complete), then renamed into place. The copy
    goes through the hidden folder's descriptor (/proc/self/fd), never a path lookup."""
    hidden = f"{OURS}partial-{name}"
    shutil.rmtree(hidden, dir_fd=fd, ignore_errors=True)  # left by an earlier attempt
    os.mkdir(hidden, 0o700, dir_fd=fd)
    hfd = os.open(hidden, DIR_FLAGS, dir_fd=fd)
    try:
        via = f"/proc/self/fd/{hfd}"
        shutil.copytree(staging, via, symlinks=True, dirs_exist_ok=True)
        os.fchmod(hfd, 0o700)
        _seal_fd(hfd, str(rule.path / hidden), rule)  # owners are not copied: give them
        _fsync_tree(via)
    finally:
        os.close(hfd)
    os.rename(hidden, name, src_dir_fd=fd, dst_dir_fd=fd)


MANIFEST_LIMIT = 16 * 1024 * 1024  # far more than any manifest; never read a planted giant


def published_manifest(rule: FolderRule, name: str) -> bytes:
    """The manifest.json of what sits in the folder under `name`, if it can be ringi's:
    a real folder (not a link) owned by the configured owner, holding a regular file
    manifest.json. Anything else raises FolderError; nothing is changed either way."""
    if not name or "/" in name or name.startswith("."):
        raise FolderError(f"bad delivery name {name!r}")
    uid = uid_of(rule.owner)
    top = open_folder(rule.path)
    try:
        st = os.stat(name, dir_fd=top, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise FolderError("it is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError("it is not a folder")
        if st.st_uid != uid:
            raise FolderError(f"it is owned by uid {st.st_uid}, not {rule.owner or uid}")
        folder = os.open(name, DIR_FLAGS, dir_fd=top)
    finally:
        os.close(top)
    try:
        opened = os.fstat(folder)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise FolderError("it was replaced while being checked")
        try:
            fd = os.open("manifest.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, dir_fd=folder)
        except FileNotFoundError:
            raise FolderError("it has no manifest.json") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FolderError("its manifest.json is a symbolic link") from None
            raise
    finally:
        os.close(folder)
    try:
        mst = os.fstat(fd)
        if not stat.S_ISREG(mst.st_mode):
            raise FolderError("its manifest.json is not a regular file")
        if mst.st_size > MANIFEST_LIMIT:
            raise FolderError(f"its manifest.json has {mst.st_size} bytes")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MANIFEST_LIMIT + 1)
    finally:
        os.close(fd)


def remove_delivery(rule: FolderRule, name: str) -> bool:
    """Delete one delivery folder; a symlink planted under its name is removed, not followed.

    Returns False when nothing was there.
    """
    if not name or "/" in name or name in (".", ".."):
        raise FolderError(f"bad delivery name {name!r}")
    fd = open_folder(rule.path)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)  # a link or file planted in its place: never followed
            return True
        assert shutil.rmtree.avoids_symlink_attacks  # fd-based on Linux
        shutil.rmtree(name, dir_fd=fd)
        return True
    finally:
        os.close(fd)

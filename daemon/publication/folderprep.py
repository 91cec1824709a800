"""Receiving folders made ready for a delivery: checked, created, or finished.

A missing folder is created atomically: made under a hidden name in its parent, given its
group and mode through its descriptor, then renamed into place, so it appears finished or
not at all. A folder ringi itself left half set up (its own, still private, holding only
ringi's hidden leftovers) is finished once ringi may give it its group; any other folder is
only checked, and each problem comes with the command that fixes it.
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


def _entries(fd: int) -> list[str] | None:
    try:
        rfd = readable(fd)
    except OSError:
        return None
    try:
        return os.listdir(rfd)
    finally:
        os.close(rfd)


def half_set_up(rule: FolderRule, fd: int, st: os.stat_result) -> bool:
    """A folder an interrupted or refused creation left behind: ringi's own, still private
    (nobody else could have entered it), holding nothing but ringi's hidden leftovers.
    Finishing it (group, mode) exposes nothing that was not meant for the partner."""
    if not (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() == uid_of(rule.owner)
            and not stat.S_IMODE(st.st_mode) & 0o077):
        return False
    entries = _entries(fd)
    return entries is not None and all(n.startswith(OURS) for n in entries)


def _finish(fd: int, rule: FolderRule) -> None:
    rfd = readable(fd)
    try:
        os.fchown(rfd, *chown_args(uid_of(rule.owner), gid_of(rule.group)))
        os.fchmod(rfd, rule.mode)  # after the group: a chown may clear set-id bits
    finally:
        os.close(rfd)


def open_checked(rule: FolderRule) -> tuple[int, os.stat_result]:
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
    fd, st = open_checked(rule)
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
    fsync_dir(parent)
    log.info("receiving folder %s created (%s:%s, mode %04o)", rule.path,
             user_name(uid_of(rule.owner)), group_name(gid_of(rule.group)), rule.mode)


STALE_SECONDS = 60  # a hidden creation folder older than this was left by a crash


def _clear_leftover(parent: int, hidden: str, path: Path, needed: bool) -> None:
    """Remove ringi's own hidden creation folder left by a crash; a fresh one belongs to a
    creation under way (another daemon): wait for it rather than pull it away. Anything
    else under that name stops a creation (`needed`) and is otherwise left alone."""
    try:
        st = os.stat(hidden, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        if needed:
            raise FolderError(f"{path.parent / hidden} is in the way and is not ringi's; "
                              "remove it")
        return
    if time.time() - st.st_mtime < STALE_SECONDS:
        if needed:
            raise FolderUnavailable(f"{path} is being created by another attempt")
        return
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
        try:
            fd = open_in(parent, name, rule.path.absolute())
        except FileNotFoundError:
            fd = -1
        try:
            _clear_leftover(parent, f"{OURS}new-{name}", rule.path, needed=fd < 0)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        if fd < 0:
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


def fsync_dir(fd: int) -> None:
    try:
        rfd = readable(fd)
    except OSError:
        return  # a parent ringi may enter but not read: the rename is durable soon anyway
    try:
        os.fsync(rfd)
    finally:
        os.close(rfd)

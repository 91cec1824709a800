"""Partners' receiving folders: checked before every write, published into atomically.

A delivery is built in the transmission folder and appears in the partner's folder by one
rename, so a partner never sees half of it. Nothing here follows a symlink: the folder
itself, every path component and every name inside it are checked with lstat or opened
with O_NOFOLLOW relative to a directory descriptor. A folder that is group- or
world-writable, or owned by someone other than configured, is refused rather than fixed.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path


class FolderError(Exception):
    """Why a receiving folder cannot be used (said to the administrator as it is)."""


class FolderUnavailable(FolderError):
    """The share is not there right now (not mounted, I/O error): worth retrying later."""


@dataclass(frozen=True)
class FolderRule:
    path: Path
    owner: str  # user name or numeric id; "self" (or "") = the user ringi runs as
    group: str  # group name or numeric id; "self" (or "") = ringi's own group
    mode: int  # exact permission bits the folder must have, e.g. 0o750


def uid_of(owner: str) -> int:
    if owner in ("", "self"):
        return os.geteuid()
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise FolderError(f"no such user {owner!r}") from None


def gid_of(group: str) -> int:
    if group in ("", "self"):
        return os.getegid()
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise FolderError(f"no such group {group!r}") from None


def _no_symlinks_on_the_way(path: Path) -> None:
    path = path.absolute()  # a relative folder is relative to the working directory
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                raise FolderError(f"{current} is a symbolic link; ringi does not follow links")
        except FileNotFoundError:
            raise FolderError(f"{current} does not exist") from None


def check_folder(rule: FolderRule) -> os.stat_result:
    """The folder as it must be before anything is written into it."""
    _no_symlinks_on_the_way(rule.path)
    st = os.lstat(rule.path)
    if not stat.S_ISDIR(st.st_mode):
        raise FolderError(f"{rule.path} is not a folder")
    uid, gid = uid_of(rule.owner), gid_of(rule.group)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise FolderError(f"{rule.path} is writable by group or others (mode {mode:04o}); "
                          "refusing to publish into it")
    if st.st_uid != uid:
        raise FolderError(f"{rule.path} is owned by uid {st.st_uid}, not {rule.owner or uid}")
    if st.st_gid != gid:
        raise FolderError(f"{rule.path} has group gid {st.st_gid}, not {rule.group or gid}")
    if mode != rule.mode:
        raise FolderError(f"{rule.path} has mode {mode:04o}, configured {rule.mode:04o}")
    return st


def ensure_folder(rule: FolderRule) -> None:
    """Create a missing receiving folder as configured (first delivery on a new share);
    an existing one is only checked, never changed."""
    if not os.path.lexists(rule.path):
        if not rule.path.absolute().parent.is_dir():  # the share itself is missing
            raise FolderUnavailable(f"{rule.path.parent} is not there (share not mounted?)")
        os.mkdir(rule.path, 0o700)
        os.chown(rule.path, uid_of(rule.owner), gid_of(rule.group))
        os.chmod(rule.path, rule.mode)
    check_folder(rule)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _file_mode(folder_mode: int) -> int:
    """Files readable by whoever may read the folder, writable by nobody else."""
    return (folder_mode & 0o750) & ~0o111 | 0o600


def _seal_dir(fd: int, where: str, uid: int, gid: int, dir_mode: int, file_mode: int) -> None:
    """Owners and modes through descriptors opened with O_NOFOLLOW: nothing here can be
    redirected by a link, even one planted while the walk runs."""
    for entry in os.scandir(fd):
        path = f"{where}/{entry.name}"
        if entry.is_symlink():
            raise FolderError(f"{path} is a symbolic link in a delivery; ringi does not "
                              "follow links")
        if entry.is_dir(follow_symlinks=False):
            child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            try:
                _seal_dir(child, path, uid, gid, dir_mode, file_mode)
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
            os.fchown(ffd, uid, gid)
            os.fchmod(ffd, file_mode)
        finally:
            os.close(ffd)
    os.fchown(fd, uid, gid)
    os.fchmod(fd, dir_mode)


def seal(staging: Path, rule: FolderRule) -> None:
    """Give a delivery folder the folder's owner and group, read-only for the partner.

    A symlink, at the top or anywhere inside, is refused, never followed: `seal` may run
    on a folder found in the partner's folder (the crash recovery in the builder).
    """
    uid, gid = uid_of(rule.owner), gid_of(rule.group)
    st = os.lstat(staging)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise FolderError(f"{staging} is not a folder (a symbolic link?); not touched")
    fd = os.open(staging, _DIR_FLAGS)
    try:
        _seal_dir(fd, str(staging), uid, gid, rule.mode & 0o750, _file_mode(rule.mode))
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
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
    st = check_folder(rule)
    if "/" in name or name.startswith("."):
        raise FolderError(f"bad delivery name {name!r}")
    seal(staging, rule)
    _fsync_tree(staging)
    fd = os.open(rule.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            os.lstat(name, dir_fd=fd)
            raise FolderError(f"{rule.path / name} already exists; a delivery never "
                              "replaces anything")
        except FileNotFoundError:
            pass
        if os.stat(staging).st_dev == st.st_dev:
            os.rename(staging, name, dst_dir_fd=fd)
        else:
            # Copied into a private folder (0700 until complete), then renamed into place.
            hidden = f".ringi-partial-{name}"
            remove_delivery(rule, hidden)  # left by a crash during an earlier attempt
            tmp = rule.path / hidden
            os.mkdir(tmp, 0o700)
            shutil.copytree(staging, tmp, symlinks=True, dirs_exist_ok=True)
            os.chmod(tmp, 0o700)
            seal(tmp, rule)  # owners are not copied: give them again (the folder too)
            _fsync_tree(tmp)
            os.rename(hidden, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    shutil.rmtree(staging, ignore_errors=True)  # published: leftovers only cost disk
    return rule.path / name


MANIFEST_LIMIT = 16 * 1024 * 1024  # far more than any manifest; never read a planted giant


def published_manifest(rule: FolderRule, name: str) -> bytes:
    """The manifest.json of what sits in the folder under `name`, if it can be ringi's:
    a real folder (not a link) owned by the configured owner, holding a regular file
    manifest.json. Anything else raises FolderError; nothing is changed either way."""
    if not name or "/" in name or name.startswith("."):
        raise FolderError(f"bad delivery name {name!r}")
    _no_symlinks_on_the_way(rule.path)
    uid = uid_of(rule.owner)
    top = os.open(rule.path, _DIR_FLAGS)
    try:
        st = os.stat(name, dir_fd=top, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise FolderError("it is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError("it is not a folder")
        if st.st_uid != uid:
            raise FolderError(f"it is owned by uid {st.st_uid}, not {rule.owner or uid}")
        folder = os.open(name, _DIR_FLAGS, dir_fd=top)
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
    _no_symlinks_on_the_way(rule.path)
    path = rule.path / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)  # a link or file planted in its place: remove it, never follow it
        return True
    assert shutil.rmtree.avoids_symlink_attacks  # fd-based on Linux
    shutil.rmtree(path)
    return True

"""Partners' receiving folders: checked before every write, published into atomically.

A delivery is built in the transmission folder and appears in the partner's folder by one
rename, so a partner never sees half of it. Nothing here follows a symlink: every path
component is opened with O_NOFOLLOW relative to the descriptor of the one before
(`fsaccess`), and every name inside the folder is handled relative to the folder's
descriptor. A folder that is group- or world-writable, or owned by someone other than
configured, is refused rather than fixed (`folderprep`: the one exception is a folder
ringi itself left half set up).

The supported model needs no capabilities: the folder is owned by the user ringi runs as,
its group is the partner's group (ringi a member of it, `SupplementaryGroups=`), mode 0750
(or 2750). ringi writes; the partner's accounts read through the group.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from daemon.publication.folderprep import (
    OURS,
    FolderRule,
    check_folder,
    chown_args,
    ensure_folder,
    fsync_dir,
    open_checked,
    os_problem,
)
from daemon.publication.fsaccess import (
    DIR_FLAGS,
    FolderError,
    FolderUnavailable,
    gid_of,
    open_folder,
    open_in,
    privilege_problems,
    uid_of,
)

__all__ = ["FolderError", "FolderRule", "FolderUnavailable", "check_folder", "ensure_folder",
           "gid_of", "publish", "published_manifest", "remove_delivery", "seal", "uid_of"]


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

    A symlink, at the top or anywhere inside, is refused, never followed: `seal` may run
    on a folder found in the partner's folder (the crash recovery in the builder), and
    then no component of the way there may be a link either. A staging folder in ringi's
    own transmission folder is reached as configured.
    """
    if staging.absolute().parent == rule.path.absolute():
        parent, name = open_folder(rule.path), staging.name
    else:
        parent = os.open(staging.absolute().parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        name = staging.name
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
    fd, st = open_checked(rule)
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
            fsync_dir(fd)
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

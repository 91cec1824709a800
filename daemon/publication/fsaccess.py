"""Reaching a receiving folder without following links, and what this process may do there.

Every component of a folder's path is opened with O_NOFOLLOW relative to the descriptor of
the one before it (O_PATH, so only search permission is needed on the way), so a symbolic
link anywhere in the path is refused, never followed, even one planted while the walk runs.

An unprivileged process (ringi under the shipped unit: `User=ringi`, no capabilities) can
give a file only to itself, and only to a group it is a member of; it can write only into
a folder it owns (receiving folders are never group-writable). `privilege_problems` says
before any work which of these a folder's settings would need, with the exact fix.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path

PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER = 0, 1, 3
UNIT = "systemd/ringi.service"


class FolderError(Exception):
    """Why a receiving folder cannot be used (said to the administrator as it is)."""


class FolderUnavailable(FolderError):
    """The share is not there right now (not mounted, I/O error): worth retrying later."""


def uid_of(owner: str) -> int:
    if owner in ("", "self"):
        return os.geteuid()
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise FolderError(f"no such user {owner!r} (folder_owner); fix: name the user ringi "
                          f"runs as ({me()}), or \"self\"") from None


def gid_of(group: str) -> int:
    if group in ("", "self"):
        return os.getegid()
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise FolderError(f"no such group {group!r} (folder_group); fix: create it (`groupadd "
                          f"{group}`) for the partner's accounts, or name an existing one") \
            from None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def me() -> str:
    """The user this process runs as, as the fixes name it."""
    return user_name(os.geteuid())


def capabilities() -> int:
    """The effective capability set (bit n = capability n); root without a bounding set
    has them all, ringi under the shipped unit has none."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return ~0 if os.geteuid() == 0 else 0


def has_cap(cap: int) -> bool:
    return bool(capabilities() >> cap & 1)


def in_group(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def privilege_problems(path: Path, owner: str, group: str) -> list[str]:
    """What this process lacks to give a delivery the folder's owner and group, and write
    into the folder; each line says what to change. Empty: nothing is lacking."""
    uid, gid = uid_of(owner), gid_of(group)
    problems = []
    if uid != os.geteuid() and not (has_cap(CAP_CHOWN) and has_cap(CAP_DAC_OVERRIDE)):
        problems.append(
            f"folder_owner is {user_name(uid)} but ringi runs as {me()}, and an unprivileged "
            f"process can neither give files to another user (CAP_CHOWN) nor write into a "
            f"folder it does not own; fix: set folder_owner = \"{me()}\" in the partner file "
            f"(ringi owns the folder, the partner reads through its group), and as root "
            f"`chown {me()} {path}` if the folder exists")
    if not in_group(gid) and not has_cap(CAP_CHOWN):
        name = group_name(gid)
        problems.append(
            f"ringi (user {me()}) is not a member of the partner's group {name}, so it cannot "
            f"give deliveries that group; fix: add `SupplementaryGroups={name}` to the "
            f"[Service] section of {UNIT} (`systemctl edit ringi`), then "
            f"`systemctl restart ringi` (or `usermod -aG {name} {me()}` and restart)")
    return problems


def missing_groups(problems: list[str]) -> list[str]:
    """The group names the lines above ask SupplementaryGroups= for."""
    found = []
    for line in problems:
        if "`SupplementaryGroups=" in line:
            found.append(line.split("`SupplementaryGroups=", 1)[1].split("`", 1)[0])
    return found


def _refused(parent: int, name: str, shown: Path, exc: OSError) -> FolderError:
    """Say why the component `name` (under the descriptor `parent`) could not be opened."""
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            return FolderError(f"{shown} is not a folder")
        if stat.S_ISLNK(st.st_mode):
            return FolderError(
                f"{shown} is a symbolic link; ringi does not follow links: name the real "
                "path in the partner file's folder")
        return FolderError(f"{shown} is not a folder")
    if exc.errno == errno.EACCES:
        return FolderError(
            f"ringi (user {me()}) may not pass through {shown.parent} to reach {shown.name}; "
            f"fix: let it search that folder (e.g. as root `chmod o+x {shown.parent}`, or a "
            "group ringi is in)")
    return FolderError(f"{shown}: {exc.strerror or exc}")


def open_parent(path: Path) -> tuple[int, str]:
    """An O_PATH descriptor of the folder's parent, every component opened with O_NOFOLLOW
    relative to the one before, and the folder's own name. A missing component raises
    FolderUnavailable (a share that is not mounted is never built on the local disk)."""
    path = path.absolute()  # a relative folder is relative to the working directory
    parts = path.parts[1:]
    if not parts or any(p == ".." for p in parts):
        raise FolderError(f"{path}: a receiving folder is named by a path without '..'")
    fd = os.open(path.anchor, PATH_FLAGS)
    shown = Path(path.anchor)
    try:
        for part in parts[:-1]:
            shown = shown / part
            try:
                child = os.open(part, PATH_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise FolderUnavailable(f"{shown} is not there (share not mounted?)") from None
            except OSError as exc:
                raise _refused(fd, part, shown, exc) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def open_in(parent: int, name: str, shown: Path, flags: int = PATH_FLAGS) -> int:
    """Open the folder `name` under `parent` without following a link (O_PATH: only the
    parent's search permission is needed; `readable` gives a descriptor to list or fsync)."""
    try:
        return os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _refused(parent, name, shown, exc) from None


def readable(fd: int) -> int:
    """A readable descriptor of the very folder `fd` refers to (no path is looked up)."""
    return os.open(".", DIR_FLAGS, dir_fd=fd)


def open_folder(path: Path) -> int:
    """An O_PATH descriptor of the folder itself, reached without following any link."""
    parent, name = open_parent(path)
    try:
        try:
            return open_in(parent, name, path.absolute())
        except FileNotFoundError:
            raise FolderError(f"{path} does not exist") from None
    finally:
        os.close(parent)

"""Secret files: created private, and refused when anyone else could read them."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


class InsecureSecretError(Exception):
    pass


def check_private(path: Path) -> None:
    """Refuse a secret that group or others can read, or that is a symlink."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise InsecureSecretError(f"{path}: a secret file must not be a symbolic link")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureSecretError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
            f"run: chmod 600 {path}"
        )


def load_or_create_key(path: Path, nbytes: int = 32) -> bytes:
    """Read a key file, creating a random one (mode 0600) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(nbytes).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning("created the key %s (mode 0600): back it up with the spool; without it "
                    "the reply links already mailed stop working", path)
    check_private(path)
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise InsecureSecretError(f"{path}: key is too short (at least 32 characters)")
    return key

"""Partner folders under the shipped unit's user: real accounts, real permissions.

The tests run as root, so the service's user is a real unprivileged account made here
(`useradd`), and ringi runs as that account in a subprocess (`setpriv`, which drops every
capability with root): without the partner's group it must name `SupplementaryGroups=`,
with it a delivery must work end to end and the partner's account must be able to read it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from daemon.cli.main import cli
from daemon.clock import SystemClock
from daemon.publication.folders import FolderError, FolderRule, ensure_folder
from daemon.publication.partners import PartnerRegistry
from daemon.store.db import Store
from tests.integration.test_crash_recovery import DaemonProcess
from tests.integration.test_outcomes import ADMIN, World
from tests.integration.test_publication import PARTNER, PARTNER_MAIL, release
from tests.support import (
    ROOT,
    CapturingRelay,
    free_port,
    make_config,
    stamp_key_pem,
    wait_until,
    write_config,
)

USER, GROUP, READER = "ringi-svc-test", "ringi-partner-test", "ringi-reader-test"
TOOLS = ("useradd", "groupadd", "setpriv")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
    reason="needs root to make the test accounts (useradd, groupadd) and setpriv to run "
           "ringi as one of them")


def _add(kind: str, name: str, *args: str) -> None:
    lookup = pwd.getpwnam if kind == "useradd" else grp.getgrnam
    try:
        lookup(name)
        return
    except KeyError:
        pass
    done = subprocess.run([kind, "--system", *args, name], capture_output=True, text=True,
                          check=False)
    try:
        lookup(name)  # made here, or by a concurrent run of these tests
    except KeyError:
        raise AssertionError(f"{kind} {name}: {done.stderr}") from None


@pytest.fixture(scope="module")
def accounts() -> None:
    """The service user (its own group only), the partner's group and a partner account."""
    _add("groupadd", GROUP)
    _add("useradd", USER, "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin")
    _add("useradd", READER, "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
         "--groups", GROUP)


@pytest.fixture
def base(accounts: None) -> Iterator[Path]:
    """A folder every test account may pass through (pytest's tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ringi-unit-user-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(cmd: list[str], user: str = USER, groups: tuple[str, ...] = (),
            **kw: object) -> subprocess.CompletedProcess[str]:
    """`cmd` as `user` with exactly `groups` as supplementary groups, no capabilities."""
    return subprocess.run(as_user_argv(cmd, user, groups), capture_output=True, text=True,
                          check=False, cwd=ROOT, **kw)  # type: ignore[call-overload]


def as_user_argv(cmd: list[str], user: str = USER, groups: tuple[str, ...] = ()) -> list[str]:
    which = f"--groups={','.join(groups)}" if groups else "--clear-groups"
    return ["setpriv", f"--reuid={user}", f"--regid={user}", which, "--", *cmd]


def chown(path: Path, user: str, group: str, mode: int) -> None:
    os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)


def owners(path: Path) -> tuple[str, str, int]:
    st = os.lstat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


ENSURE = """
import sys
from pathlib import Path
from daemon.publication.folders import FolderError, FolderRule, ensure_folder
from daemon.publication.partners import PartnerRegistry
from daemon.store.db import Store
try:
    ensure_folder(FolderRule(Path(sys.argv[1]), sys.argv[2], sys.argv[3], 0o750))
except FolderError as exc:
    sys.exit(f"refused: {exc}")
print("ready")
"""


def ensure_as_user(path: Path, groups: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return as_user([sys.executable, "-c", ENSURE, str(path), USER, GROUP], groups=groups,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_half_set_up_folder_is_finished_once_ringi_is_in_the_group(base: Path) -> None:
    share = base / "share"
    share.mkdir()
    chown(share, USER, USER, 0o755)  # ringi may create partner folders here
    kobe = share / "kobe"
    # Without the partner's group: the fix is named, and nothing is left half made.
    out = ensure_as_user(kobe)
    assert out.returncode == 1
    assert f"`SupplementaryGroups={GROUP}`" in out.stderr and "not a member" in out.stderr
    assert os.listdir(share) == []
    # What an earlier ringi left when its chgrp was refused: its own folder, still private,
    # with a hidden copy leftover inside, and an interrupted creation next to it.
    kobe.mkdir()
    chown(kobe, USER, USER, 0o700)
    (kobe / ".ringi-partial-R-1-kobe-1").mkdir()
    chown(kobe / ".ringi-partial-R-1-kobe-1", USER, USER, 0o700)
    stale = share / ".ringi-new-kobe"
    stale.mkdir()
    chown(stale, USER, USER, 0o700)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    out = ensure_as_user(kobe, groups=(GROUP,))
    assert out.returncode == 0, out.stderr
    assert owners(kobe) == (USER, GROUP, 0o750)
    assert not stale.exists()
    # A folder that is not private any more is not ringi's to fix: the command is named.
    chown(kobe, USER, USER, 0o750)
    out = ensure_as_user(kobe, groups=(GROUP,))
    assert out.returncode == 1
    assert f"fix (as root): `chgrp {GROUP} {kobe}`" in out.stderr
    assert owners(kobe) == (USER, USER, 0o750)
    # Created fresh by ringi itself: it appears finished, with the partner's group.
    fresh = share / "osaka"
    out = ensure_as_user(fresh, groups=(GROUP,))
    assert out.returncode == 0, out.stderr
    assert owners(fresh) == (USER, GROUP, 0o750)
    assert sorted(os.listdir(share)) == ["kobe", "osaka"]


def test_parent_ringi_may_not_write_names_the_install_command(base: Path) -> None:
    share = base / "share"
    share.mkdir(mode=0o755)  # root's: ringi cannot create folders here
    out = ensure_as_user(share / "kobe", groups=(GROUP,))
    assert out.returncode == 1
    assert f"`install -d -o {USER} -g {GROUP} -m 0750 {share / 'kobe'}`" in out.stderr
    subprocess.run(["install", "-d", "-o", USER, "-g", GROUP, "-m", "0750",
                    str(share / "kobe")], check=True)
    assert ensure_as_user(share / "kobe", groups=(GROUP,)).returncode == 0


CHECK = """
import sys
from pathlib import Path
from daemon.publication.folderprep import FolderRule
from daemon.publication.partnercheck import Report, folder_report
for path in sys.argv[3:]:
    report = Report("kobe", "test")
    folder_report(FolderRule(Path(path), sys.argv[1], sys.argv[2], 0o750), report)
    print(path, "|", " || ".join(report.problems) or "ok")
"""


def test_a_read_only_share_names_read_write_paths(base: Path) -> None:
    """ProtectSystem=strict without the share in ReadWritePaths=, as a read-only bind mount
    in a private mount namespace: the probe finds it and names the unit line."""
    share = base / "share"
    share.mkdir()
    chown(share, USER, USER, 0o755)
    subprocess.run(["install", "-d", "-o", USER, "-g", GROUP, "-m", "0750",
                    str(share / "kobe")], check=True)
    probe = as_user_argv([sys.executable, "-c", CHECK, USER, GROUP, str(share / "kobe"),
                          str(share / "osaka")], groups=(GROUP,))
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    out = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(share), *probe],
                         capture_output=True, text=True, check=False, cwd=ROOT)
    if "mount:" in out.stderr or "unshare:" in out.stderr:
        pytest.skip(f"cannot make a read-only mount here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" | ", 1) for line in out.stdout.splitlines())
    assert f"add `ReadWritePaths={share / 'kobe'}`" in lines[str(share / "kobe")]
    assert f"add `ReadWritePaths={share}`" in lines[str(share / "osaka")]
    # The same share writable: both are fine (osaka would be created by ringi).
    fine = as_user([sys.executable, "-c", CHECK, USER, GROUP, str(share / "kobe"),
                    str(share / "osaka")], groups=(GROUP,))
    assert fine.stdout.count("| ok") == 2, fine.stdout + fine.stderr
    assert os.listdir(share) == ["kobe"] and os.listdir(share / "kobe") == []


def test_a_link_anywhere_in_the_path_is_refused_and_nothing_goes_through_it(
        base: Path) -> None:
    real, elsewhere = base / "share", base / "elsewhere"
    real.mkdir()
    elsewhere.mkdir()
    (base / "via").symlink_to(elsewhere)
    rule = FolderRule(base / "via" / "kobe", "0", "0", 0o750)
    with pytest.raises(FolderError, match=f"{base / 'via'} is a symbolic link"):
        ensure_folder(rule)
    assert os.listdir(elsewhere) == []  # not created through the link
    (real / "kobe").symlink_to(elsewhere)  # the last component a link: not followed either
    with pytest.raises(FolderError, match=f"{real / 'kobe'} is a symbolic link"):
        ensure_folder(FolderRule(real / "kobe", "0", "0", 0o750))
    assert owners(elsewhere)[2] == 0o755 and os.listdir(elsewhere) == []
    os.chmod(real, 0o770)  # an existing folder is checked, never changed: the fix is named
    with pytest.raises(FolderError, match=f"writable by group or others .*`chmod 0750 {real}`"):
        ensure_folder(FolderRule(real, "0", "0", 0o750))
    assert owners(real)[2] == 0o770


PARTNER_FILE = """
name = "{name}"
title = "{name} Co."
emails = ["{mail}"]
public_key_file = "kobe.pub.pem"
folder = "{folder}"
folder_owner = "{owner}"
folder_group = "{group}"
folder_mode = "0750"
{values}
"""


def service_setup(base: Path, relay: CapturingRelay | None,
                  partners: dict[str, Path]) -> tuple[Path, int]:
    """ringi's state as under the unit (/var/lib/ringi owned by its user), partner files,
    and a configuration; returns the configuration file and the SMTP port."""
    var = base / "var"
    files = base / "partners"
    files.mkdir()
    key = load_pem_private_key(stamp_key_pem(), None)  # an RSA-3072 key made once per run
    (base / "kobe.key").write_bytes(stamp_key_pem())  # the partner's, read by its account
    (files / "kobe.pub.pem").write_bytes(key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    values = "\n".join(f"{k} = {v}" for k, v in PARTNER.items())
    for name, folder in partners.items():
        mail = PARTNER_MAIL if name == "kobe-precision" else f"cad@{name}.example"
        (files / f"{name}.toml").write_text(PARTNER_FILE.format(
            name=name, mail=mail, folder=folder, owner=USER, group=GROUP, values=values))
    port = free_port()
    cfg = make_config(var, f"sqlite:///{var / 'ringi.db'}", relay.port if relay else None,
                      port, publication={"partners_dir": str(files)})
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(var)], check=True)
    cfg_file = write_config(cfg, base)
    return cfg_file, port


def test_partners_check_names_the_fix_and_probes_as_the_service_user(base: Path) -> None:
    share = base / "share"
    share.mkdir(mode=0o755)
    kobe = share / "kobe"  # the recommended setup, made once by the administrator
    subprocess.run(["install", "-d", "-o", USER, "-g", GROUP, "-m", "0750", str(kobe)],
                   check=True)
    (base / "via").symlink_to(share)
    cfg_file, _ = service_setup(base, None, {"kobe-precision": kobe,
                                             "osaka": base / "via" / "osaka"})
    check = [sys.executable, "-m", "daemon", "--config", str(cfg_file), "partners", "check"]
    without = as_user(check)
    assert without.returncode == 1, without.stdout + without.stderr
    assert "kobe-precision: PROBLEMS" in without.stdout
    assert f"is not a member of the partner's group {GROUP}" in without.stdout
    assert f"add `SupplementaryGroups={GROUP}` to the [Service] section of " \
        "systemd/ringi.service" in without.stdout
    assert f"{base / 'via'} is a symbolic link; ringi does not follow links" in without.stdout
    with_group = as_user([*check, "kobe-precision"], groups=(GROUP,))
    assert with_group.returncode == 0, with_group.stdout + with_group.stderr
    assert "kobe-precision: ok" in with_group.stdout and "osaka" not in with_group.stdout
    assert os.listdir(kobe) == []  # the probe entry was removed again


def test_partners_check_sees_the_partners_as_the_next_start_applies_them(
        tmp_path: Path, db_url: str) -> None:
    share = tmp_path / "share"
    (share / "kobe").mkdir(parents=True, mode=0o750)
    os.chmod(share / "kobe", 0o750)
    (tmp_path / "via").symlink_to(share)
    files = tmp_path / "partners"
    files.mkdir()
    key = load_pem_private_key(stamp_key_pem(), None)
    (files / "kobe.pub.pem").write_bytes(key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    values = "\n".join(f"{k} = {v}" for k, v in PARTNER.items())

    def partner_file(folder: Path) -> None:
        (files / "kobe-precision.toml").write_text(PARTNER_FILE.format(
            name="kobe-precision", mail=PARTNER_MAIL, folder=folder, owner="0", group="0",
            values=values))

    partner_file(share / "kobe")
    cfg = make_config(tmp_path, db_url, None, free_port(),
                      publication={"partners_dir": str(files)})
    argv = ["--config", str(write_config(cfg, tmp_path)), "partners", "check"]
    new = CliRunner().invoke(cli, argv)  # before any start: the file as written
    assert new.exit_code == 0, new.output
    assert "kobe-precision: ok" in new.output and "(applied at the next start)" in new.output
    store = Store(db_url)
    try:
        with store.transaction() as s:  # what a start does
            PartnerRegistry(SystemClock()).sync_files(s, files)
    finally:
        store.dispose()
    applied = CliRunner().invoke(cli, argv)
    assert applied.exit_code == 0, applied.output
    assert f"kobe-precision: ok  ({files / 'kobe-precision.toml'})" in applied.output
    partner_file(tmp_path / "via" / "kobe")  # edited: checked as the next start takes it
    edited = CliRunner().invoke(cli, argv)
    assert edited.exit_code == 1
    assert f"{tmp_path / 'via'} is a symbolic link" in edited.output
    assert "(applied at the next start)" in edited.output
    os.unlink(files / "kobe-precision.toml")  # gone: deactivated at the next start
    gone = CliRunner().invoke(cli, argv)
    assert gone.exit_code == 0 and "no partners" in gone.output, gone.output


class Remote(World):
    """A World for a daemon in another process: only mail goes back and forth."""

    def __init__(self, relay: CapturingRelay, port: int) -> None:
        self.relay, self.port, self.seen = relay, port, {}


def test_delivery_works_under_the_units_user_with_its_supplementary_group(
        base: Path, relay: CapturingRelay) -> None:
    share = base / "share"
    share.mkdir()
    chown(share, USER, USER, 0o755)  # ringi creates the partner's folder itself
    kobe = share / "kobe"
    cfg_file, port = service_setup(base, relay, {"kobe-precision": kobe})
    log = base / "daemon.log"
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    daemon = DaemonProcess(cfg_file, port, log)
    # As shipped, without the group: the start says exactly what to change.
    daemon.proc = None
    _start_as(daemon, env, groups=())
    try:
        wait_until(lambda: f"SupplementaryGroups={GROUP}" in log.read_text(), 10,
                   "the start-up message")
        [alert] = relay.wait_for(ADMIN)  # and the administrator is told by mail
    finally:
        daemon.terminate()
    assert f"partner kobe-precision cannot receive deliveries: ringi (user {USER}) is not " \
        f"a member of the partner's group {GROUP}" in log.read_text()
    assert "Partner kobe-precision: deliveries cannot be made" in alert.subject
    assert f"add `SupplementaryGroups={GROUP}` to the [Service] section" in alert.body
    # With SupplementaryGroups=: a real delivery, readable by the partner's account only.
    _start_as(daemon, env, groups=(GROUP,))
    try:
        w = Remote(relay, port)
        release(w, "drawing", {"D-100-A.pdf": os.urandom(300_000)})
        w.one(PARTNER_MAIL)
    finally:
        daemon.terminate()
    [name] = os.listdir(kobe)
    delivery = kobe / name
    assert owners(kobe) == (USER, GROUP, 0o750)
    assert owners(delivery) == (USER, GROUP, 0o750)
    assert {owners(f) for f in delivery.iterdir()} == {(USER, GROUP, 0o640)}
    unwrap = ["openssl", "pkeyutl", "-decrypt", "-inkey", str(base / "kobe.key"), "-in",
              str(delivery / "password.bin"), "-pkeyopt", "rsa_padding_mode:oaep",
              "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]
    password = as_user(unwrap, user=READER, groups=(GROUP,))
    assert password.returncode == 0, password.stderr
    [first] = sorted(delivery.glob("*.7z.001"))
    test = as_user(["7zz", "t", f"-p{password.stdout}", str(first)], user=READER,
                   groups=(GROUP,))
    assert test.returncode == 0 and "Everything is Ok" in test.stdout, test.stdout
    assert as_user(["ls", str(kobe)], user=READER).returncode != 0  # not without the group


def _start_as(daemon: DaemonProcess, env: dict[str, str], groups: tuple[str, ...]) -> None:
    """DaemonProcess.start, as the service's user."""
    argv = as_user_argv([sys.executable, "-m", "daemon", "--config", str(daemon.config_file),
                         "run"], groups=groups)
    with open(daemon.log, "ab") as out:
        daemon.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env})

    def listening() -> bool:
        import socket

        assert daemon.proc is not None
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited:\n{daemon.log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", daemon.port), 0.2).close()
            return True
        except OSError:
            return False

    wait_until(listening, 30, "the daemon to listen")

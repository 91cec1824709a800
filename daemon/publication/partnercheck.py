"""Can this process deliver to each partner? Checked at start and by `ringi partners check`.

A partner's key must load and wrap a password; its folder must be reachable without a link,
exist (or be creatable) with its owner, group and mode, and this very process must be able
to create, chgrp, chmod and rename an entry there. The last part is tested for real with a
hidden probe folder made and removed through O_NOFOLLOW descriptors, so a read-only mount
(`ProtectSystem=strict` without `ReadWritePaths=`), a missing group membership
(`SupplementaryGroups=`) or a folder ringi does not own is found before a delivery fails,
and every problem comes with the change that fixes it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.notify.alerts import AdminAlerts
from daemon.publication.envelope import wrap_password
from daemon.publication.folderprep import (
    OURS,
    FolderRule,
    chown_args,
    creation_problem,
    folder_problems,
    half_set_up,
    os_problem,
)
from daemon.publication.fsaccess import (
    DIR_FLAGS,
    UNIT,
    FolderError,
    FolderUnavailable,
    gid_of,
    group_name,
    me,
    missing_groups,
    open_in,
    open_parent,
    privilege_problems,
    uid_of,
)
from daemon.publication.partnerfile import PartnerSpec, read_public_key
from daemon.publication.partners import PartnerRegistry, PartnerView
from daemon.store.db import Store
from daemon.store.publication_models import Partner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A partner as deliveries would use it: its folder rule and its key in force."""

    name: str
    source: str
    rule: FolderRule
    public_key: str


@dataclass
class Report:
    name: str
    source: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    waiting: bool = False  # the share is not there now: deliveries wait, retried


def target_of(p: PartnerView | PartnerSpec, source: str) -> Target:
    key = p.public_key if isinstance(p, PartnerView) else p.key.pem
    rule = FolderRule(Path(p.folder).absolute(), p.folder_owner, p.folder_group,
                      p.folder_mode)
    return Target(p.name, source, rule, key)


def key_problems(name: str, pem: str) -> list[str]:
    """The key must load and wrap a password as a delivery does. A partner key is a bare
    public key: it carries no expiry date, so there is none to check."""
    fix = (f"fix: ask the partner for an RSA public key of at least 3072 bits and run "
           f"`ringi partners rotate-key {name} NEW_KEY.pem` (or put it in the partner file)")
    try:
        info = read_public_key(pem)
        blob = wrap_password(secrets.token_urlsafe(33), pem.encode("ascii"))
    except ValueError as exc:
        return [f"public key: {exc}; {fix}"]
    if len(blob) * 8 != info.bits:
        return [f"public key: wrapping a password gave {len(blob)} bytes, not "
                f"{info.bits // 8}; {fix}"]
    return []


def _probe(fd: int, where: Path, rule: FolderRule, creating: bool) -> list[str]:
    """Create, give group and mode, rename and remove a hidden entry in `fd`: exactly what a
    delivery (or the folder's creation) does there, as this process."""
    name = f"{OURS}probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.mkdir(name, 0o700, dir_fd=fd)
    except OSError as exc:
        problem = creation_problem(exc, rule) if creating else \
            os_problem(exc, f"put a delivery into {where}", where)
        return [str(problem)]
    try:
        pfd = os.open(name, DIR_FLAGS, dir_fd=fd)
        try:
            os.fchown(pfd, *chown_args(uid_of(rule.owner), gid_of(rule.group)))
            os.fchmod(pfd, rule.mode & 0o750)
        finally:
            os.close(pfd)
        os.rename(name, name + "-moved", src_dir_fd=fd, dst_dir_fd=fd)
        name += "-moved"
    except OSError as exc:
        return [f"ringi (user {me()}) cannot prepare a delivery in {where} (group "
                f"{group_name(gid_of(rule.group))}, mode {rule.mode & 0o750:04o}): "
                f"{exc.strerror or exc}"]
    finally:
        shutil.rmtree(name, dir_fd=fd, ignore_errors=True)
    return []


def folder_report(rule: FolderRule, report: Report, probe: bool = True) -> None:
    """Fill `report` with what stands between this process and a delivery into `rule`."""
    path = rule.path
    try:
        owner, group = uid_of(rule.owner), gid_of(rule.group)
        report.problems += privilege_problems(path, rule.owner, rule.group)
        parent, name = open_parent(path)
    except FolderUnavailable as exc:
        report.problems.append(f"{exc}; deliveries wait for it (retried)")
        report.waiting = True
        return
    except FolderError as exc:
        report.problems.append(str(exc))
        return
    try:
        try:
            fd = open_in(parent, name, path)
        except FileNotFoundError:
            report.notes.append(
                f"{path} does not exist yet: ringi creates it at the first delivery "
                f"(owner {rule.owner or owner}, group {group_name(group)}, mode "
                f"{rule.mode:04o})")
            if probe and not report.problems:
                report.problems += _probe(parent, path.parent, rule, creating=True)
            return
        except FolderError as exc:
            report.problems.append(str(exc))
            return
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        found = folder_problems(rule, st)
        if found and half_set_up(rule, fd, st):
            report.notes.append(
                f"{path} was left half set up by an earlier attempt "
                f"({'; '.join(p.split('; fix')[0] for p in found)}): ringi finishes it "
                "at the next delivery" + (" once the problems above are fixed"
                                          if report.problems else ""))
            found = []
        report.problems += found
        if probe and not report.problems:
            report.problems += _probe(fd, path, rule, creating=False)
    finally:
        os.close(fd)


def check_target(t: Target, probe: bool = True) -> Report:
    report = Report(t.name, t.source)
    report.problems += key_problems(t.name, t.public_key)
    folder_report(t.rule, report, probe)
    return report


def targets(s: Session, registry: PartnerRegistry, directory: Path) -> list[Target]:
    """The partners deliveries will use once the partner files are applied (as the next
    start applies them): a file that is new or changed is checked as written, every other
    active partner as stored, with its key in force (`rotate-key` may have changed it); a
    partner whose file is gone is left out (the next start deactivates it). Raises
    PartnerError for broken files."""
    specs = {spec.name: spec for spec in registry.check_files(directory)}
    digests = {name: digest for name, digest in s.execute(select(Partner.name,
                                                                  Partner.digest))}
    found: dict[str, Target] = {}
    for view in registry.all(s):
        spec = specs.get(view.name)
        if not view.active or (view.origin == "file" and spec is None):
            continue  # inactive, or its file is gone (the next start deactivates it)
        if spec is None or (view.origin == "file" and digests.get(view.name) == spec.digest):
            found[view.name] = target_of(view, view.source)
    for name, spec in specs.items():
        if name not in found:
            found[name] = target_of(spec, f"{spec.source} (applied at the next start)")
    return [found[n] for n in sorted(found)]


def summary(reports: list[Report]) -> str | None:
    """The one unit-file change that covers every missing group, if any is missing."""
    groups = sorted({g for r in reports for g in missing_groups(r.problems)})
    if not groups:
        return None
    return (f"ringi (user {me()}) needs the partners' groups: add `SupplementaryGroups="
            f"{' '.join(groups)}` to the [Service] section of {UNIT} (`systemctl edit "
            "ringi`), then `systemctl restart ringi`")


def log_at_start(reports: list[Report]) -> None:
    """Say at start, in the log, exactly what stands between ringi and each partner."""
    for r in reports:
        for line in r.problems:
            log.log(logging.WARNING if r.waiting else logging.ERROR,
                    "partner %s cannot receive deliveries: %s", r.name, line)
        for line in r.notes:
            log.info("partner %s: %s", r.name, line)
    if (fix := summary(reports)) is not None:
        log.error("%s", fix)


def check_at_start(store: Store, registry: PartnerRegistry,
                   alerts: AdminAlerts | None = None) -> list[Report]:
    """Every active partner, checked as this process (probes included), logged, and told
    to the administrator (one mail per partner and day; a share that is merely not there
    yet is only logged). Never stops the start: approvals go on; a delivery that cannot
    work fails with the same reason and the administrator is told then too."""
    try:
        with store.transaction() as s:
            views = [v for v in registry.all(s) if v.active]
        reports = [check_target(target_of(v, v.source)) for v in views]
    except Exception:
        log.exception("the partners' folders could not be checked")
        return []
    log_at_start(reports)
    broken = [r for r in reports if r.problems and not r.waiting]
    if alerts is not None and broken:
        fix = summary(reports)
        try:
            with store.transaction() as s:
                for r in broken:
                    body = "\n".join([
                        f"ringi cannot deliver to partner {r.name} ({r.source}):",
                        *(f"- {line}" for line in r.problems), *([fix] if fix else [])])
                    alerts.tell(s, f"partner-folder:{r.name}",
                                f"Partner {r.name}: deliveries cannot be made", body)
        except Exception:
            log.exception("the administrator could not be told about the partners' folders")
    return reports

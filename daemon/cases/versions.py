"""Cases whose own workflow version no longer builds are suspended, with the reason.

A case runs on the workflow version it started with (daemon.routing.registry). When the
case types change under it (a field its `when` names was removed or renamed), that stored
version no longer builds, and every step of the case would raise the same error again:
a reply retried until it is a dead letter, a start that fails on the directory import.
So at start every waiting case is checked, and a case whose version does not build is
suspended (history: the reason; the administrator: one mail per version with what to do).
An input that meets such a version later (a `correct` of a returned case) suspends the
cases on it the same way and becomes a dead letter the administrator can retry once the
case types are fixed (daemon.intake.pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.states import OPEN_STATES, CaseState
from daemon.notify.alerts import AdminAlerts
from daemon.routing.registry import StoredVersionError
from daemon.store.models import Case

if TYPE_CHECKING:
    from daemon.cases.workflow import Workflow

# Cases that may still route: waiting ones, and returned ones a `correct` continues.
_ROUTING = frozenset({*OPEN_STATES, CaseState.RETURNED})


def suspend_unbuildable(wf: Workflow, s: Session) -> list[str]:
    """Suspend every routing case whose workflow version no longer builds; log lines."""
    lines: list[str] = []
    cases = s.scalars(select(Case).where(Case.state.in_([str(x) for x in _ROUTING]),
                                         Case.workflow_version_id.is_not(None))
                      .order_by(Case.id)).all()
    checked: set[int] = set()
    for case in cases:
        vid = case.workflow_version_id
        if vid is None or vid in checked:
            continue
        checked.add(vid)
        try:
            wf.registry.of_version(s, vid, case.case_type)
        except StoredVersionError as exc:
            lines += suspend_on_version(wf, s, exc)
    return lines


def suspend_on_version(wf: Workflow, s: Session, exc: StoredVersionError) -> list[str]:
    """Suspend the routing cases on `exc`'s version and tell the administrator once."""
    cases = s.scalars(select(Case).where(Case.workflow_version_id == exc.version_id,
                                         Case.state.in_([str(x) for x in _ROUTING]))
                      .order_by(Case.id)).all()
    for case in cases:
        case.state = CaseState.SUSPENDED
        wf.record(s, case, "suspended", None, detail=str(exc))
    if not cases:
        return []
    numbers = ", ".join(c.number for c in cases)
    AdminAlerts(wf.notifier, wf.clock, wf.cfg.workflow.admin).tell(
        s, f"version:{exc.version_id}", f"Workflow {exc.label} no longer builds: "
        f"{len(cases)} case(s) suspended",
        f"{exc}.\nThese cases run on that version and are suspended: {numbers}.\n"
        "Restore the case type fields the version names (rules/casetypes/), restart "
        "ringi, then resume each case with: ringi case resume NUMBER", case=cases[0])
    return [f"case {c.number} suspended: {exc}" for c in cases]

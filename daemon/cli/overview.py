"""The first lines of `ringi status`: is ringi running, and what waits for whom.

An operator asked "is it working?" wants, in this order: which daemons run on this store
(and which stopped answering), how many cases stand in each state, the approval that has
waited longest and for whom, the cases nobody can move on (held, suspended), and the dead
letters. Times are in the company's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from daemon.cases.states import CaseState, StepState
from daemon.cli.output import echo, inline
from daemon.directory.lookup import member
from daemon.store.instance_models import instances
from daemon.store.models import Case, CaseStep, WorkItem
from daemon.workqueue.queue import State

if TYPE_CHECKING:
    from daemon.app import App

LISTED = 10  # held or suspended cases named one by one


def ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def print_overview(app: App) -> None:
    now = app.clock.now()
    zone = app.cfg.workflow.zone

    def at(when: datetime) -> str:
        return f"{when.astimezone(zone):%Y-%m-%d %H:%M} ({ago(now - when)})"

    # A daemon writes a heartbeat every timer pass: silent for three passes is news.
    silent = timedelta(seconds=max(3 * app.cfg.workflow.timer_seconds, 60) + 30)
    with app.store.transaction() as s:
        rows = instances(s)
        running = [r for r in rows if r.stopped_at is None and now - r.seen_at <= silent]
        echo(f"daemons   {len(running)} running" + ("" if rows else
                                                    " (none has run on this store)"))
        for r in rows[-5:]:
            what = (f"stopped {at(r.stopped_at)}" if r.stopped_at is not None else
                    f"running, heartbeat {ago(now - r.seen_at)}" if r in running else
                    f"NOT ANSWERING: last heartbeat {at(r.seen_at)}")
            echo(f"  {inline(r.name)} on {inline(r.host)} pid {r.pid}, started "
                 f"{at(r.started_at)}: {what}")
        counts = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        echo("cases     " + ("  ".join(f"{k}={counts[k]}" for k in sorted(counts))
                             if counts else "none yet"))
        oldest = s.execute(select(CaseStep.asked_at, CaseStep.approver_id, Case.number)
                           .join(Case, Case.id == CaseStep.case_id)
                           .where(CaseStep.state == StepState.PENDING)
                           .order_by(CaseStep.asked_at, CaseStep.id).limit(1)).first()
        if oldest is not None:
            asked_at, approver, number = oldest
            who = member(s, approver)
            name = who.person.name if who is not None else approver
            echo(f"oldest waiting approval: {number}, asked {at(asked_at)}, waiting for "
                 f"{inline(name)} ({approver})")
        for state, hint in ((CaseState.HELD, "nobody can approve its step"),
                            (CaseState.SUSPENDED, "its stored rules cannot be built")):
            numbers = list(s.scalars(select(Case.number).where(Case.state == state)
                                     .order_by(Case.id).limit(LISTED + 1)))
            if numbers:
                more = f" and {counts.get(state, 0) - LISTED} more" \
                    if len(numbers) > LISTED else ""
                echo(f"{state:<9} {', '.join(numbers[:LISTED])}{more} ({hint}; "
                     "`ringi case show NUMBER`)")
        dead = s.scalar(select(func.count()).select_from(WorkItem)
                        .where(WorkItem.state == State.DEAD)) or 0
        if dead:
            echo(f"dead letters: {dead} (listed under recent errors; `ringi queue retry ID` "
                 "once the cause is fixed)")

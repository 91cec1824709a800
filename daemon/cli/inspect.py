"""Read-only views for operators: a case timeline and queue health."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.documents import case_documents, superseded_by
from daemon.cases.reorgrunner import rerouting
from daemon.cli.output import echo, inline
from daemon.cli.overview import print_overview
from daemon.clock import OffsetClock, describe_offset
from daemon.intake.store import recent_duplicates
from daemon.notify.views import case_view, person_name, snapshot_name
from daemon.store.condition_models import Execution
from daemon.store.models import Case, CaseEvent, CaseStep, WorkItem
from daemon.store.publication_models import Delivery
from daemon.store.reorg_models import ReorgKeptReply, in_progress
from daemon.workqueue.queue import State, queue_stats

if TYPE_CHECKING:
    from daemon.app import App


def print_case(app: App, number: str) -> bool:
    with app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        if case is None:
            return False
        view = case_view(s, case, app.types, "en")
        echo(f"{view['number']}  {inline(view['title'])}")
        echo(f"  type:      {view['type_title']} ({view['type']})")
        echo(f"  requester: {inline(view['requester'])}")
        echo(f"  state:     {view['state']} (round {case.round})")
        route = case.route or {}
        if case.state == "held":
            echo(f"  held:      at {inline(route.get('where', '-'))}: "
                 f"{inline(route.get('held', '-'))} ({inline(route.get('detail', ''))}); "
                 "resumes when a directory import gives this step an approver")
        if case.state == "received" and route.get("deferred"):
            echo(f"  waiting:   registered during reorganisation {route['deferred']}; routed "
                 "when it ends")
        echo(f"  workflow:  {app.registry.version_label(s, case.workflow_version_id)}")
        echo(f"  created:   {view['created']}")
        for f in view["fields"]:
            echo(f"  {inline(f['label'])}: {inline(f['value'])}")
        print_documents(s, case)
        echo("timeline:")
        for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                           .order_by(CaseEvent.seq, CaseEvent.id)):
            who = inline(snapshot_name(e.actor, "en")) if e.actor else "ringi"
            unit = f", {inline(e.actor['unit_name'])}" if e.actor.get("unit_name") else ""
            line = f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.kind:<9} {who}{unit}"
            if e.decision:
                line += f"  -> {e.decision.upper()}"
            if e.reason:
                line += f"  reason: {inline(e.reason)}"
            if e.detail:
                line += f"  [{inline(e.detail)}]"
            echo(line)
        steps = s.scalars(select(CaseStep).where(CaseStep.case_id == case.id)
                          .order_by(CaseStep.seq)).all()
        if steps:
            echo("steps:")
            for st in steps:
                extra = f", {st.kind}" if st.kind != "approver" else ""
                mode = f", {st.mode} of ask {st.slot}" if st.mode != "single" else ""
                echo(f"  {st.seq}. {st.phase}/{st.step_name}: {st.approver_id} via "
                           f"{st.resolver}{extra}{mode}: {st.state}")
        print_executions(s.scalars(select(Execution).where(Execution.case_id == case.id)
                                   .order_by(Execution.id)).all())
    return True


def print_documents(s: Session, case: Case) -> None:
    """Every document with who added it, when, at which stage and round; one replaced by
    a later document of the same name says so (it is no longer stamped or delivered)."""
    docs = case_documents(s, case.id)
    replaced = superseded_by(docs)
    for a in docs:
        who = person_name(s, a.added_by, "en") if a.added_by else "ringi"
        later = replaced.get(a.id)
        note = (f"; replaced by the {later.stage} document of "
                f"{later.added_at:%Y-%m-%d %H:%M:%S} (not stamped or delivered)") if later else ""
        echo(f"  attachment: {inline(a.filename)} ({a.size} bytes, sha256 {a.sha256})")
        echo(f"      added by {inline(who)} at {a.added_at:%Y-%m-%d %H:%M:%S} UTC with {a.stage}, "
             f"round {a.round}{note}")


def print_executions(rows: Sequence[Execution]) -> None:
    if rows:
        echo("executions:")
    for ex in rows:
        if ex.state == "not_executed":
            echo(f"  not executed ({ex.reason}): {inline(ex.detail)}")
            continue
        sent = f", sent {ex.sent_at:%Y-%m-%d %H:%M} UTC" if ex.sent_at else ""
        echo(f"  {ex.state}: {ex.destination} <{ex.address}>, due "
                   f"{ex.due_at:%Y-%m-%d %H:%M} UTC{sent} [{inline(ex.detail)}]")


def _print_reorganisation(s: Session) -> None:
    """A change in progress, and the cases nobody can approve (held)."""
    reorg = in_progress(s, wait=False)  # shown even while a commit runs
    if reorg is not None:
        kept = len(s.scalars(select(ReorgKeptReply.id).where(
            ReorgKeptReply.reorg_id == reorg.id)).all())
        echo(f"REORGANISATION {reorg.id} IN PROGRESS since {reorg.begun_at:%Y-%m-%d %H:%M:%S} "
             f"({inline(reorg.source)}): routing waits; {kept} kept repl(ies); "
             "`ringi reorg commit` or `ringi reorg rollback`")
    if (left := rerouting(s)):
        echo(f"reorganisation: {left} case(s) still being rerouted (their new approvers are "
             "asked shortly; `ringi reorg status`)")
    held = s.scalars(select(Case).where(Case.state == "held").order_by(Case.id)).all()
    if held:
        echo(f"held cases (nobody can approve them): {len(held)}")
    for c in held[:10]:
        route = c.route or {}
        echo(f"  {c.number}  {inline(route.get('where', '-'))}: {inline(route.get('held', '-'))}")
    if len(held) > 10:
        echo(f"  ... and {len(held) - 10} more (`ringi case show NUMBER`)")


def print_status(app: App) -> None:
    now = app.clock.now()
    if isinstance(app.clock, OffsetClock):  # never let a shifted clock pass unnoticed
        echo(f"clock     SHIFTED {describe_offset(app.clock.offset)}: now "
             f"{now:%Y-%m-%d %H:%M:%S} UTC (real {app.clock.base.now():%Y-%m-%d %H:%M:%S})")
    print_overview(app)
    for qs in queue_stats(app.store):
        counts = "  ".join(f"{k}={v}" for k, v in qs.counts.items())
        oldest = "-"
        if qs.oldest_waiting is not None:
            age = (now - qs.oldest_waiting).total_seconds()
            oldest = f"{qs.oldest_waiting:%Y-%m-%d %H:%M:%S} ({age:.0f}s ago)"
        echo(f"{qs.queue:<9} {counts}  oldest waiting: {oldest}")
    with app.store.transaction() as s:
        building = s.scalars(select(Delivery).where(Delivery.state.in_(("queued", "building")))
                             .order_by(Delivery.id)).all()
        if building:
            echo("deliveries in progress:")
        for d in building:
            pct = f"{100 * d.done_bytes // d.total_bytes}%" if d.total_bytes else "-"
            echo(f"  {inline(d.name)} {d.state}: {d.done_bytes:,} of {d.total_bytes:,} bytes "
                       f"({pct}), updated {d.updated_at:%Y-%m-%d %H:%M:%S}")
        errors = s.scalars(
            select(WorkItem).where(WorkItem.last_error.is_not(None))
            .order_by(WorkItem.updated_at.desc()).limit(5)
        ).all()
        if errors:
            echo("recent errors:")
        for w in errors:
            first = (w.last_error or "").splitlines()[0][:160]
            dead = " (dead letter: `ringi queue retry ID`)" if w.state == State.DEAD else ""
            echo(f"  item {w.id} {w.queue} {w.state} attempts={w.attempts}{dead}: {first}")
        _print_reorganisation(s)
        days = app.cfg.mail.duplicate_window_days
        dups, latest = recent_duplicates(s, now - timedelta(days=days))
        if latest is not None:  # resends recognised: stored and acknowledged, acted on once
            echo(f"duplicate deliveries in the last {days} days: {dups} (latest: intake "
                       f"{latest.id} = intake {latest.duplicate_of}, "
                       f"{latest.received_at:%Y-%m-%d %H:%M:%S})")

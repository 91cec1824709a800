"""When a waiting step next needs the timers: the earlier of its reminder and escalation.

Each pending step carries `next_check_at` so a timer pass reads only the steps whose time
has come (one indexed query) instead of every waiting step. The value is set when a step is
created or asked, moved on after the timers act on it, and cleared when the step is decided
or closed (any change of `state` away from pending clears it, see `_state_changed`).

The value may only ever be too early, never too late: a step visited early is left alone and
given its next time, so a stale value written by a second daemon costs one extra visit. The
only way to make it late is changing the reminder or escalation settings, so the settings in
force are remembered in the database (`counters`, under `SETTINGS_KEY`) and, when they differ
at start, every pending step's time is computed again (`refresh_due_times`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, update

from daemon.cases.calendar import add_business_days
from daemon.cases.states import StepState
from daemon.config import WorkflowConfig
from daemon.store.db import Store, insert_if_absent
from daemon.store.models import CaseStep, Counter

SETTINGS_KEY = "timers:due-time-settings"
BATCH = 500


def reminder_at(step: CaseStep, cfg: WorkflowConfig) -> datetime:
    return add_business_days(step.asked_at, cfg.reminder_after_days, cfg.business_days,
                             cfg.holidays)


def escalation_at(step: CaseStep, cfg: WorkflowConfig) -> datetime:
    return add_business_days(step.asked_at, cfg.escalate_after_days, cfg.business_days,
                             cfg.holidays)


def escalates(step: CaseStep) -> bool:
    """Whether the timers may still escalate this step (as `Timers._step` decides)."""
    return step.escalated_at is None and step.kind != "escalation" and step.mode != "all"


def next_check(step: CaseStep, cfg: WorkflowConfig) -> datetime | None:
    """The earlier of the reminder and escalation still to come; None when neither is."""
    if step.state != StepState.PENDING:
        return None
    times = []
    if step.reminded_at is None:
        times.append(reminder_at(step, cfg))
    if escalates(step):
        times.append(escalation_at(step, cfg))
    return min(times) if times else None


def settings_fingerprint(cfg: WorkflowConfig) -> int:
    """The settings a due time depends on, as a number that fits the counters' column."""
    body = json.dumps({"reminder": cfg.reminder_after_days,
                       "escalate": cfg.escalate_after_days,
                       "weekdays": sorted(set(cfg.business_days)),
                       "holidays": sorted({d.isoformat() for d in cfg.holidays})},
                      sort_keys=True)
    return int(hashlib.sha256(body.encode()).hexdigest()[:15], 16)


def refresh_due_times(store: Store, cfg: WorkflowConfig, batch: int = BATCH) -> int:
    """At start: give every pending step its due time if the settings differ from those the
    stored times were computed with (or none were: rows from before due times existed).
    Returns how many steps were computed; 0 on an ordinary restart."""
    fp = settings_fingerprint(cfg)
    with store.transaction() as s:
        if s.scalar(select(Counter.value).where(Counter.name == SETTINGS_KEY)) == fp:
            return 0
    done, after = 0, 0
    while True:
        with store.transaction() as s:
            steps = list(s.scalars(select(CaseStep).where(
                CaseStep.state == StepState.PENDING, CaseStep.id > after)
                .order_by(CaseStep.id).limit(batch)))
            for step in steps:
                step.next_check_at = next_check(step, cfg)
        done += len(steps)
        if len(steps) < batch:
            break
        after = steps[-1].id
    with store.transaction() as s:
        if not insert_if_absent(s, Counter, {"name": SETTINGS_KEY, "value": fp}, ["name"]):
            s.execute(update(Counter).where(Counter.name == SETTINGS_KEY).values(value=fp))
    return done


@event.listens_for(CaseStep.state, "set")
def _state_changed(target: CaseStep, value: Any, _old: Any, _initiator: Any) -> None:
    """A step decided, returned or closed waits for nothing: no timer reads it again."""
    if value != StepState.PENDING:
        target.next_check_at = None


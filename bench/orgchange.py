"""Reorganisation benchmark: verify and commit a directory change against many waiting cases.

Generates an organisation (units tree of divisions, departments and sections; positions
with ranks; a head per unit; a chief per section; some proxy relations) as a directory
file, imports it, and writes waiting cases straight into the store, each in review with
one pending ask resolved as routing would (travel: the next rank above the requester in
their section; design release: the head of their section) and a live reply token. Then it
writes a second directory in which about --touch of the sections change (heads and chiefs
swap posts, heads move to another section, chiefs leave, both leave so nobody is left
above), plus a few staff moving section, plans it, and times `Reorganisations.verify()`,
`commit(hold_failing=True)` (after begin), the reroute of every moved case that follows
(the daemon's `reorg` runner, drained in this process) and `rollback()`: wall time, this
process's CPU time (a PostgreSQL server works in its own), and the process's peak RSS.
Seeding runs in a child process, so the peak RSS is that of the steps timed.

    .venv/bin/python bench/orgchange.py --people 10000 --cases 100000
    .venv/bin/python bench/orgchange.py --people 500 --cases 2000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from daemon.app import App  # noqa: E402
from daemon.cases.states import CaseState, StepState  # noqa: E402
from daemon.clock import FrozenClock  # noqa: E402
from daemon.config import Config  # noqa: E402
from daemon.store.models import Case, CaseStep, ReplyToken  # noqa: E402

NOW = datetime(2027, 3, 31, 18, 0, tzinfo=UTC)
POSITIONS = [("staff", "Staff", "担当", 10), ("chief", "Chief", "主任", 20),
             ("section_manager", "Section Manager", "課長", 30),
             ("department_manager", "Department Manager", "部長", 40),
             ("director", "Director", "本部長", 50)]


@dataclass
class Org:
    """The generated organisation: people as [unit, position], and the posts held."""

    units: dict[str, str | None] = field(default_factory=dict)  # id -> parent
    people: dict[str, list[str]] = field(default_factory=dict)  # id -> [unit, position]
    heads: dict[str, str] = field(default_factory=dict)  # unit -> person
    sections: list[str] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> Org:
        return Org(dict(self.units), {k: list(v) for k, v in self.people.items()},
                   dict(self.heads), list(self.sections), [dict(r) for r in self.relations])

    def in_unit(self, unit: str, position: str) -> list[str]:
        return [p for p, (u, pos) in self.people.items() if u == unit and pos == position]

    def as_file(self) -> dict[str, Any]:
        return {
            "units": [{"id": u, "name": f"Unit {u}", "name_ja": f"部門 {u}",
                       **({"parent": p} if p else {})} for u, p in self.units.items()],
            "positions": [{"id": i, "name": n, "name_ja": j, "rank": r}
                          for i, n, j, r in POSITIONS],
            "people": [{"id": p, "name": f"Person {p}", "name_ja": f"社員 {p}",
                        "email": f"{p}@example.com", "locale": "ja" if i % 3 else "en",
                        "unit": u, "position": pos}
                       for i, (p, (u, pos)) in enumerate(self.people.items())],
            "roles": [{"unit": u, "role": "head", "person": p} for u, p in self.heads.items()],
            "relations": self.relations,
        }


def organisation(people: int, rng: random.Random) -> Org:
    """Divisions > departments > sections of about 14 people: a head, a chief, staff."""
    org = Org()
    org.units["hq"] = None
    n_sections = max(4, people // 14)
    n_deps = max(2, n_sections // 7)
    n_divs = max(1, n_deps // 10)
    org.people["admin"] = ["hq", "director"]
    org.people["ceo"] = ["hq", "director"]
    org.heads["hq"] = "ceo"
    for d in range(n_divs):
        org.units[f"div{d}"] = "hq"
        org.people[f"dir{d}"] = [f"div{d}", "director"]
        org.heads[f"div{d}"] = f"dir{d}"
    for d in range(n_deps):
        org.units[f"dep{d}"] = f"div{d % n_divs}"
        org.people[f"dm{d}"] = [f"dep{d}", "department_manager"]
        org.heads[f"dep{d}"] = f"dm{d}"
    for sec in range(n_sections):
        unit = f"sec{sec}"
        org.units[unit] = f"dep{sec % n_deps}"
        org.sections.append(unit)
        org.people[f"sm{sec}"] = [unit, "section_manager"]
        org.heads[unit] = f"sm{sec}"
        org.people[f"ch{sec}"] = [unit, "chief"]
    staff = max(0, people - len(org.people))
    for i in range(staff):
        org.people[f"st{i}"] = [org.sections[i % n_sections], "staff"]
    for sec in rng.sample(range(n_sections), max(1, n_sections // 10)):  # chiefs stand in
        org.relations.append({"approver": f"ch{sec}", "person": f"sm{sec}", "kind": "proxy",
                              "valid_from": "2027-01-01"})
    return org


def reorganised(org: Org, touch: float, rng: random.Random) -> Org:
    """About `touch` of the sections change hands; some staff move section."""
    new = org.copy()
    chosen = rng.sample(org.sections, max(1, round(len(org.sections) * touch)))
    for i, unit in enumerate(chosen):
        head = new.heads.get(unit)
        chiefs = new.in_unit(unit, "chief")
        kind = i % 10
        if kind < 5 and head and chiefs:  # head and chief swap posts
            new.people[head][1], new.people[chiefs[0]][1] = "chief", "section_manager"
            new.heads[unit] = chiefs[0]
        elif kind < 8 and head:  # the head moves to head another section; theirs comes here
            other = rng.choice(org.sections)
            there = new.heads.get(other)
            if there and other != unit and there in new.people:
                new.people[head][0], new.people[there][0] = other, unit
                new.heads[unit], new.heads[other] = there, head
        elif kind < 9:  # the chief leaves: staff climb to the head
            for c in chiefs:
                del new.people[c]
        else:  # chief and head leave: nobody left above staff (held), head climbs
            for c in chiefs:
                del new.people[c]
            if head:
                del new.people[head]
                del new.heads[unit]
    staff = [p for p, (_, pos) in new.people.items() if pos == "staff"]
    for p in rng.sample(staff, len(staff) // 50):  # 2 % of staff move section
        new.people[p][0] = rng.choice(new.sections)
    new.relations = [r for r in new.relations
                     if r["approver"] in new.people and r["person"] in new.people]
    return new


def config(tmp: Path, db_url: str, directory: Path) -> Config:
    return Config.model_validate({
        "instance": {"name": "bench", "log_level": "WARNING"},
        "paths": {"spool": f"{tmp}/spool", "rules": str(ROOT / "rules"),
                  "templates": str(ROOT / "mailtemplates")},
        "database": {"url": db_url or f"sqlite:///{tmp}/ringi.db"},
        "relay": {"host": "", "port": 25},
        "directory": {"file": str(directory)},
    })


def approvers(org: Org) -> dict[tuple[str, str], str | None]:
    """Who routing asks first, per (requester, case type): the next rank above in the
    section (travel, up to rank 30), or the section's head (design release)."""
    rank = {p[0]: p[3] for p in POSITIONS}
    by_unit: dict[str, list[tuple[int, str]]] = {}
    for p, (u, q) in org.people.items():
        by_unit.setdefault(u, []).append((rank[q], p))
    out: dict[tuple[str, str], str | None] = {}
    for p, (u, q) in org.people.items():
        out[(p, "design_release")] = org.heads.get(u)
        above = sorted((r, o) for r, o in by_unit[u] if rank[q] < r <= 30)
        out[(p, "travel")] = above[0][1] if above else None
    return out


def seed(db_url: str, tmp: str, people: int, cases: int, touch: float) -> None:
    """Child process: the organisation, its import, the waiting cases, the new directory."""
    rng = random.Random(7)
    org = organisation(people, rng)
    first = Path(tmp) / "org.json"
    first.write_text(json.dumps(org.as_file()))
    app = App(config(Path(tmp), db_url, first), clock=FrozenClock(NOW))
    t0 = time.perf_counter()
    app.prepare()
    imported = time.perf_counter() - t0
    try:
        wf = app.workflow
        versions = {ct: wf.registry.current(ct)[0] for ct in ("travel", "design_release")}
        requesters = [p for p, (_, pos) in org.people.items() if pos in ("staff", "chief")]
        asked = approvers(org)
        t0 = time.perf_counter()
        batch = 2000
        for start in range(0, cases, batch):
            rows, steps = [], []
            for i in range(start, min(cases, start + batch)):
                req = requesters[i % len(requesters)]
                ct = "design_release" if i % 10 < 3 else "travel"
                who = asked[(req, ct)] or "ceo"
                at = NOW - timedelta(hours=1 + i % 200)
                rows.append(dict(
                    number=f"B-{i:08d}", case_type=ct, title=f"Request {i}", requester_id=req,
                    state=CaseState.IN_REVIEW, fields=_fields(ct, i), created_at=at,
                    updated_at=at, thread_id=f"<b{i}@bench.example>",
                    workflow_version_id=versions[ct], route={"phase": 0, "step": 0, "sub": 0}))
                steps.append((who, at, ct))
            with app.store.transaction() as s:
                ids = s.scalars(insert(Case).returning(Case.id, sort_by_parameter_order=True),
                                rows).all()
                step_ids = s.scalars(insert(CaseStep).returning(
                    CaseStep.id, sort_by_parameter_order=True), [dict(
                        case_id=cid, seq=1, resolver="role" if ct == "design_release"
                        else "rank-above", approver_id=who, state=StepState.PENDING,
                        asked_at=at, round=1, slot=1, mode="single",
                        phase="head" if ct == "design_release" else "line",
                        step_name="unit-head" if ct == "design_release"
                        else "up-to-section-manager",
                        pos={"phase": 0, "step": 0, "sub": 0}, kind="approver",
                        asked_post={"unit": org.people[who][0],
                                    "position": org.people[who][1]})
                        for cid, (who, at, ct) in zip(ids, steps, strict=True)]).all()
                s.execute(insert(ReplyToken), [dict(
                    token_hash=wf.tokens.digest(f"bench{cid:010d}"), case_id=cid,
                    step_id=sid, person_id=who, created_at=at, expires_at=at + wf.tokens.ttl)
                    for cid, sid, (who, at, _) in zip(ids, step_ids, steps, strict=True)])
        seeded = time.perf_counter() - t0
        second = Path(tmp) / "org-2027-04.json"
        second.write_text(json.dumps(reorganised(org, touch, rng).as_file()))
        t0 = time.perf_counter()
        app.reorganisations.plan(second, None, "bench")
        planned = time.perf_counter() - t0
    finally:
        app.stop()
        app.store.dispose()
    print(f"  seeded: {len(org.people)} people, {len(org.units)} units, import "
          f"{imported:.1f} s; {cases} waiting cases in {seeded:.1f} s; plan (verifies once) "
          f"{planned:.1f} s", flush=True)


def _fields(case_type: str, i: int) -> dict[str, Any]:
    if case_type == "design_release":
        return {"document_number": f"D-{i}", "revision": "A", "summary": "release"}
    return {"destination": "Osaka", "purpose": "Customer visit",
            "departure_date": "2027-03-10", "return_date": "2027-03-11",
            "amount": str(10000 + i % 30000)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(out: dict[str, Any], step: str, t0: float, c0: float) -> None:
    """Record and print a step as soon as it is done (a large commit takes a while)."""
    out[step] = secs, cpu, rss = time.perf_counter() - t0, time.process_time() - c0, peak_mb()
    print(f"  {step:8} {secs:7.1f} s (CPU {cpu:6.1f} s)   peak RSS {rss:6.0f} MB", flush=True)


def measure(db_url: str, tmp: Path, rollback: bool, commit: bool = True,
            reroute: bool = True) -> None:
    app = App(config(tmp, db_url, tmp / "org.json"), clock=FrozenClock(NOW))
    out: dict[str, Any] = {}
    try:
        reorgs = app.reorganisations
        t0, c0 = time.perf_counter(), time.process_time()
        report = reorgs.verify()
        print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())),
              flush=True)
        timed(out, "verify", t0, c0)
        if not commit:
            return
        reorgs.begin("bench")
        t0, c0 = time.perf_counter(), time.process_time()
        committed = reorgs.commit("bench", hold_failing=True)
        timed(out, "commit", t0, c0)
        assert committed.counts == report.counts, (committed.counts, report.counts)
        if reroute:  # the daemon's reorg runner, in this process: every moved case asked
            t0, c0 = time.perf_counter(), time.process_time()
            n = 0
            while (done := app.reorg_runner.drain(limit=2000)):
                n += done
                print(f"    ... {n} rerouted after {time.perf_counter() - t0:.0f} s", flush=True)
            timed(out, "reroute", t0, c0)
            print(f"  rerouted {n} case(s): {n / max(out['reroute'][0], 1e-9):.0f}/s",
                  flush=True)
        if rollback:
            t0, c0 = time.perf_counter(), time.process_time()
            reorgs.rollback("bench")
            timed(out, "rollback", t0, c0)
    finally:
        app.stop()
        app.store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=10000)
    ap.add_argument("--cases", type=int, default=100000)
    ap.add_argument("--touch", type=float, default=0.2, help="fraction of sections changed")
    ap.add_argument("--database-url", default="",
                    help="PostgreSQL server to use (a scratch database is created on it)")
    ap.add_argument("--no-rollback", action="store_true", help="skip timing the rollback")
    ap.add_argument("--verify-only", action="store_true", help="time verify alone")
    ap.add_argument("--no-reroute", action="store_true",
                    help="skip running the commit's reroute items (each moved case's new ask)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from bench.ingest import drop_database, scratch_database

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}: {args.people} people, {args.cases} waiting cases, "
          f"touch {args.touch:.0%}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = scratch_database(args.database_url) if args.database_url else ""
        try:
            child = multiprocessing.get_context("spawn").Process(
                target=seed, args=(url, tmp, args.people, args.cases, args.touch))
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit("seeding failed")
            measure(url, Path(tmp), not args.no_rollback, not args.verify_only,
                    not args.no_reroute)
        finally:
            if url:
                drop_database(args.database_url, url)


if __name__ == "__main__":
    main()

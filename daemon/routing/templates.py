"""Workflow templates as data: `rules/workflows/*.toml`, validated whole on load.

A template is phases of steps. Each phase and step may carry a `when` condition (CEL, the
same language as stored approval conditions); each step names a resolver and an action.
Case types without a template follow DEFAULT: climb the requester's unit by rank to the top.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.conditions.expr import Compiled, ExprError, check_fields, compile_expr

RESOLVERS = ("rank-above", "role", "relation", "business", "fixed", "system")
ACTIONS = ("approve", "notify", "execute", "publish", "stamp")
SYSTEM_ACTIONS = ("stamp", "publish")  # ringi acts itself: nobody is asked
PHASE_KEYS = {"name", "title", "title_ja", "when", "kind", "steps"}
STEP_KEYS = {"name", "resolver", "when", "action", "unit", "min_rank", "max_rank", "role",
             "climb", "groups", "people", "mode", "title", "title_ja", "partners"}
TOP_KEYS = {"name", "case_types", "title", "title_ja", "phases", "on_vacant"}
VACANT_CHOICES = ("hold", "admin")


class TemplateError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s) in workflow templates")
        self.errors = errors


@dataclass(frozen=True)
class Step:
    name: str
    resolver: str
    action: str = "approve"
    when: Compiled | None = None
    unit: str | None = None
    min_rank: int | None = None
    max_rank: int | None = None
    role: str | None = None
    climb: bool = True
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    people: tuple[str, ...] = ()
    mode: str = "any"  # fixed lists: "any" one of them, or "all" of them
    partners: tuple[str, ...] = ()  # publish: the partners to deliver to


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    title_ja: str
    steps: tuple[Step, ...]
    when: Compiled | None = None
    kind: str = "line"  # "business": a rejection returns to the requester, earlier approvers told


@dataclass(frozen=True)
class Template:
    name: str
    case_types: tuple[str, ...]
    title: str
    title_ja: str
    phases: tuple[Phase, ...]
    source: str
    digest: str  # SHA-256 of the canonical content: a new digest is a new version
    body: dict[str, Any]  # the parsed file, stored with the version
    # A step whose post is vacant: "hold" the case until the post is filled, or ask the
    # "admin"; None follows [workflow] on_vacant.
    on_vacant: str | None = None


DEFAULT_BODY: dict[str, Any] = {
    "name": "default", "case_types": [], "title": "Line approval", "title_ja": "所属長承認",
    "phases": [{"name": "line", "title": "Line approval", "title_ja": "所属長承認",
                "steps": [{"name": "line", "resolver": "rank-above"}]}],
}


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class _Builder:
    def __init__(self, source: str, fields_of: dict[str, set[str]]) -> None:
        self.source = source
        self.fields_of = fields_of
        self.errors: list[str] = []

    def err(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where}: {message}")

    def cond(self, where: str, raw: Any, case_types: Iterable[str]) -> Compiled | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.err(where, "'when' must be a string holding a condition")
            return None
        try:
            compiled = compile_expr(raw)
        except ExprError as exc:
            self.err(where, f"condition does not compile: {exc}")
            return None
        for ct in case_types:
            for problem in check_fields(compiled, self.fields_of.get(ct, set())):
                self.err(where, f"{problem} (case type {ct})")
        return compiled

    def step(self, where: str, raw: Any, case_types: tuple[str, ...]) -> Step | None:
        if not isinstance(raw, dict):
            self.err(where, "a step must be a table")
            return None
        for key in sorted(set(raw) - STEP_KEYS):
            self.err(where, f"unknown key {key!r}")
        action = raw.get("action", "approve")
        resolver = raw.get("resolver", "system" if action in SYSTEM_ACTIONS else None)
        if (resolver == "system") != (action in SYSTEM_ACTIONS):
            self.err(where, f"actions {' and '.join(SYSTEM_ACTIONS)} are done by ringi itself "
                     "(resolver \"system\" or none); other actions need a resolver")
            return None
        partners = raw.get("partners", [])
        if action == "publish" and (not isinstance(partners, list) or not partners
                                    or not all(isinstance(p, str) for p in partners)):
            self.err(where, "a publish step needs partners = [\"partner-name\", ...]")
            partners = []
        if resolver not in RESOLVERS:
            self.err(where, f"resolver must be one of {', '.join(RESOLVERS)} (got {resolver!r})")
            return None
        if action not in ACTIONS:
            self.err(where, f"action must be one of {', '.join(ACTIONS)} (got {action!r})")
        for key in ("min_rank", "max_rank"):
            if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
                self.err(where, f"{key} must be an integer rank")
        if resolver == "role" and not isinstance(raw.get("role"), str):
            self.err(where, "a role step needs role = \"...\"")
        if resolver == "business":
            groups = raw.get("groups")
            if not isinstance(groups, dict) or not groups:
                self.err(where, "a business step needs groups = { case_type = { unit, roles } }")
            else:
                for ct, g in groups.items():
                    if not (isinstance(g, dict) and isinstance(g.get("unit"), str)
                            and isinstance(g.get("roles"), list) and g["roles"]):
                        self.err(where, f"groups.{ct} needs unit = \"...\" and roles = [...]")
        people = raw.get("people", [])
        if resolver == "fixed" and (not isinstance(people, list) or not people
                                    or not all(isinstance(p, str) for p in people)):
            self.err(where, "a fixed step needs people = [\"person-id\", ...]")
        mode = raw.get("mode", "any")
        if mode not in ("any", "all"):
            self.err(where, f"mode must be \"any\" or \"all\" (got {mode!r})")
        return Step(
            name=str(raw.get("name") or where), resolver=resolver, action=action,
            when=self.cond(where, raw.get("when"), case_types),
            unit=raw.get("unit"), min_rank=raw.get("min_rank"), max_rank=raw.get("max_rank"),
            role=raw.get("role"), climb=bool(raw.get("climb", True)),
            groups=dict(raw.get("groups") or {}),
            people=tuple(people) if isinstance(people, list) else (), mode=mode,
            partners=tuple(partners) if isinstance(partners, list) else (),
        )

    def template(self, body: dict[str, Any]) -> Template | None:
        for key in sorted(set(body) - TOP_KEYS):
            self.err("top level", f"unknown key {key!r}")
        name = body.get("name")
        cts = body.get("case_types", [])
        if not isinstance(name, str) or not name:
            self.err("top level", "name = \"...\" is required")
        if not isinstance(cts, list) or not all(isinstance(c, str) for c in cts):
            self.err("top level", "case_types must be a list of case type names")
            cts = []
        for ct in cts:
            if ct not in self.fields_of:
                self.err("case_types", f"unknown case type {ct!r}")
        on_vacant = body.get("on_vacant")
        if on_vacant is not None and on_vacant not in VACANT_CHOICES:
            self.err("top level", f"on_vacant must be \"hold\" or \"admin\" (got {on_vacant!r})")
        phases_raw = body.get("phases")
        if not isinstance(phases_raw, list) or not phases_raw:
            self.err("phases", "at least one [[phases]] is required")
            return None
        phases = []
        for i, ph in enumerate(phases_raw, 1):
            where = f"phase {i}"
            if not isinstance(ph, dict):
                self.err(where, "a phase must be a table")
                continue
            where = f"phase {ph.get('name', i)!s}"
            for key in sorted(set(ph) - PHASE_KEYS):
                self.err(where, f"unknown key {key!r}")
            kind = ph.get("kind", "line")
            if kind not in ("line", "business"):
                self.err(where, f"kind must be \"line\" or \"business\" (got {kind!r})")
            steps_raw = ph.get("steps")
            if not isinstance(steps_raw, list) or not steps_raw:
                self.err(where, "a phase needs at least one [[phases.steps]]")
                continue
            steps = [self.step(f"{where}, step {s.get('name', j) if isinstance(s, dict) else j}",
                               s, tuple(cts)) for j, s in enumerate(steps_raw, 1)]
            phases.append(Phase(
                name=str(ph.get("name") or i), title=str(ph.get("title", ph.get("name", ""))),
                title_ja=str(ph.get("title_ja", ph.get("title", ph.get("name", "")))),
                steps=tuple(s for s in steps if s is not None),
                when=self.cond(where, ph.get("when"), cts), kind=kind,
            ))
        if self.errors or not isinstance(name, str):
            return None
        return Template(name=name, case_types=tuple(cts), title=str(body.get("title", name)),
                        title_ja=str(body.get("title_ja", body.get("title", name))),
                        phases=tuple(phases), source=self.source, digest=digest_of(body),
                        body=body, on_vacant=on_vacant)


def build_template(body: dict[str, Any], source: str,
                   fields_of: dict[str, set[str]]) -> Template:
    b = _Builder(source, fields_of)
    template = b.template(body)
    if template is None:
        raise TemplateError(b.errors)
    return template


@dataclass(frozen=True)
class TemplateSet:
    by_case_type: dict[str, Template]
    default: Template

    def for_case_type(self, case_type: str) -> Template:
        return self.by_case_type.get(case_type, self.default)


def read_template_files(directory: Path, fields_of: dict[str, set[str]],
                        ) -> tuple[TemplateSet, dict[str, list[str]]]:
    """Every *.toml under `directory`, each on its own: the good ones make the set, the
    problems of the others come back by path (one broken file never hides the rest)."""
    broken: dict[str, list[str]] = {}
    by_type: dict[str, Template] = {}
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    for path in files:
        try:
            body = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            broken[str(path)] = [f"{path}: not valid TOML: {exc}"]
            continue
        try:
            t = build_template(body, str(path), fields_of)
        except TemplateError as exc:
            broken[str(path)] = exc.errors
            continue
        taken = [ct for ct in t.case_types if ct in by_type]
        if taken:
            broken[str(path)] = [f"{path}: case type {ct!r} already has the template "
                                 f"{by_type[ct].source}" for ct in taken]
            continue
        by_type.update((ct, t) for ct in t.case_types)
    return (TemplateSet(by_type, build_template(DEFAULT_BODY, "<built-in default>", fields_of)),
            broken)


def load_templates(directory: Path, fields_of: dict[str, set[str]]) -> TemplateSet:
    """Every *.toml under `directory`; all problems are collected, then raised together."""
    templates, broken = read_template_files(directory, fields_of)
    if broken:
        raise TemplateError([e for errs in broken.values() for e in errs])
    return templates


def claimed_case_types(path: Path) -> list[str] | None:
    """The case types a file that failed validation says it is for; None when unknown."""
    try:
        cts = tomllib.loads(path.read_text(encoding="utf-8")).get("case_types")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return None
    if isinstance(cts, list) and cts and all(isinstance(c, str) for c in cts):
        return cts
    return None


def held_body(path: str, case_types: list[str]) -> dict[str, Any]:
    """A stand-in for a workflow file that is invalid and has no good version: its one
    step names nobody, so each case goes to the administrator (who was told why), never
    through the default rank climbing, which could approve with fewer approvers."""
    return {"name": f"held: {Path(path).name}"[:64], "case_types": case_types,
            "title": "Held: the workflow file is invalid", "title_ja": "保留: 承認経路ファイル不正",
            "phases": [{"name": "held", "title": "Held", "title_ja": "保留", "steps": [{
                "name": "administrator decides", "resolver": "fixed",
                "people": [f"(no valid workflow in {path})"]}]}]}

"""Jinja2 mail templates per language: `mailtemplates/<locale>/<name>.txt`.

A template renders to a first line `Subject: ...`, a blank line, then the body, so subject
and body are translated together in one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
)
from jinja2.runtime import Context

from daemon.notify.wording import SUBJECT_MAX, case_subject, greeting, local_time, shorten

LOCALES = ("en", "ja")


class TemplateError(Exception):
    pass


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Templates:
    """`overrides` (searched first) holds extra templates, e.g. a destination's own mail.

    `zone` is the company's time zone: every time a mail shows goes through the `when`
    filter, in that zone and the reader's format.
    """

    def __init__(self, root: Path, overrides: Path | None = None, zone: str = "UTC") -> None:
        self.root = root
        self.zone = zone
        search = [str(overrides), str(root)] if overrides is not None else [str(root)]
        self.env = Environment(
            loader=FileSystemLoader(search),
            undefined=StrictUndefined,  # a missing variable is a bug, not an empty line
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = pass_context(
            lambda ctx, value: local_time(value, self.zone, _locale(ctx)))
        self.env.globals["case_subject"] = pass_context(
            lambda ctx, view, label, token=None: case_subject(view, label, _locale(ctx), token))
        self.env.globals["fit"] = lambda text: shorten(" ".join(str(text).split()), SUBJECT_MAX)
        self.env.globals["greeting"] = pass_context(
            lambda ctx, name: greeting(name, _locale(ctx)))

    def render(self, name: str, locale: str, context: dict[str, Any]) -> Rendered:
        loc = locale if locale in LOCALES else "en"
        try:
            template = self.env.get_template(f"{loc}/{name}.txt")
        except TemplateNotFound:
            raise TemplateError(f"no mail template {loc}/{name}.txt under {self.root}") from None
        text = template.render(locale=loc, **{"recipient": "", **context})  # greeting
        head, _, body = text.partition("\n\n")
        if not head.startswith("Subject:"):
            raise TemplateError(f"{loc}/{name}.txt must start with a 'Subject:' line")
        subject = " ".join(head[len("Subject:") :].split())
        return Rendered(subject, body.rstrip() + "\n")

    def problem(self, name: str, locale: str) -> str | None:
        """Why `name` cannot be used in `locale`, or None when it is there and compiles."""
        try:
            self.env.get_template(f"{locale}/{name}.txt")
        except TemplateNotFound:
            return f"no mail template {locale}/{name}.txt"
        except TemplateSyntaxError as exc:
            return f"{exc.filename or name}:{exc.lineno}: {exc.message}"
        return None

    def check(self, required: tuple[str, ...] = ()) -> list[str]:
        """Every required mail in every language, and every template compiles."""
        names = {loc: {p.stem for p in (self.root / loc).glob("*.txt")} for loc in LOCALES}
        wanted = set(required).union(*names.values())
        problems = []
        for loc in LOCALES:
            for missing in sorted(wanted - names[loc]):
                problems.append(f"{self.root / loc / missing}.txt is missing")
            for name in sorted(names[loc]):
                try:
                    self.env.get_template(f"{loc}/{name}.txt")
                except TemplateSyntaxError as exc:
                    problems.append(f"{self.root / loc / name}.txt:{exc.lineno}: {exc.message}")
        return problems


def _locale(ctx: Context) -> str:
    return str(ctx.get("locale") or "en")

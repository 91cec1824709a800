"""Validated directory entries, kept apart so consumers need not import the validator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    name_ja: str
    parent: str | None


@dataclass(frozen=True)
class Position:
    id: str
    name: str
    name_ja: str
    rank: int  # higher rank = more authority


@dataclass(frozen=True)
class PersonRecord:
    id: str
    name: str
    name_ja: str
    emails: tuple[str, ...]  # lower-cased
    locale: str  # "en" or "ja"
    unit: str
    position: str
    active: bool


@dataclass(frozen=True)
class DirectoryData:
    units: tuple[Unit, ...]
    positions: tuple[Position, ...]
    people: tuple[PersonRecord, ...]

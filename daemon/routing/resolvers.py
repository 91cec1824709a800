"""Approver resolvers: each answers "who is asked next, and why".

Only rank-above is built so far; the others (role climbing, registered relations, business
groups, fixed lists) plug in through the same Resolver protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.directory.lookup import Member, member, unit_members
from daemon.store.models import Position


@dataclass(frozen=True)
class Resolution:
    approver: Member | None
    resolver: str
    explanation: str  # recorded in the case history: why this person, or why nobody


class Resolver(Protocol):
    name: str

    def resolve(self, s: Session, last_actor_id: str) -> Resolution: ...


class RankAboveResolver:
    """The person in the last actor's unit with the lowest rank strictly above theirs.

    Ranks nobody holds (vacant posts) are stepped over naturally; several holders of the
    same rank are tried in id order, so the choice is stable and explainable.
    """

    name = "rank-above"

    def resolve(self, s: Session, last_actor_id: str) -> Resolution:
        actor = member(s, last_actor_id)
        if actor is None or actor.rank is None or actor.unit is None:
            return Resolution(None, self.name, f"{last_actor_id} has no post in the directory")
        above = [m for m in unit_members(s, actor.unit.id)
                 if m.rank is not None and m.rank > actor.rank and m.id != actor.id]
        unit = actor.unit.name
        if not above:
            return Resolution(
                None, self.name,
                f"nobody in {unit} ranks above {actor.person.name} ({_pos(actor)})",
            )
        best = min(above, key=lambda m: (m.rank or 0, m.id))
        vacant = s.scalars(
            select(Position.name)
            .where(Position.active.is_(True), Position.rank > actor.rank,
                   Position.rank < (best.rank or 0))
            .order_by(Position.rank)
        ).all()
        why = f"lowest rank above {_pos(actor)} in {unit}: {best.person.name} ({_pos(best)})"
        if vacant:
            why += f"; vacant in {unit}, stepped over: {', '.join(vacant)}"
        return Resolution(best, self.name, why)


def _pos(m: Member) -> str:
    return m.position.name if m.position else "no position"

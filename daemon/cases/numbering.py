"""Managing numbers: human-friendly, unique even when several intakes run at once.

The counter key is the format rendered with seq=0, so a format containing {year} gets a
fresh sequence each year, and one without it never resets.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.store.models import Counter


def next_number(s: Session, fmt: str, now: datetime) -> str:
    key = "case:" + fmt.format(year=now.year, month=now.month, seq=0)
    for _ in range(3):
        value = s.execute(
            update(Counter).where(Counter.name == key).values(value=Counter.value + 1)
            .returning(Counter.value)
        ).scalar()
        if value is not None:
            return fmt.format(year=now.year, month=now.month, seq=value)
        try:
            with s.begin_nested():  # first number of a period; another instance may race us
                s.execute(insert(Counter).values(name=key, value=1))
            return fmt.format(year=now.year, month=now.month, seq=1)
        except IntegrityError:
            continue
    raise RuntimeError(f"could not allocate a case number for {key}")

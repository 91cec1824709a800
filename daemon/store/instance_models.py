"""Which daemons run on this store: each writes a heartbeat row, so `ringi status` can say
whether ringi is running, on which hosts, and which one stopped answering.

A row per process start (name, host, pid): a daemon that was killed keeps its last
heartbeat, which is exactly what an operator needs to see.
"""

from __future__ import annotations

import datetime
import os
import socket

from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from daemon.store.models import Base, UTCDateTime

KEEP = 20  # rows of stopped or silent daemons kept for `ringi status`


class DaemonInstance(Base):
    __tablename__ = "daemon_instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))  # [instance] name
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)


def register(s: Session, name: str, now: datetime.datetime) -> int:
    """This process, started now; old rows beyond the last KEEP are let go."""
    row = DaemonInstance(name=name, host=socket.gethostname(), pid=os.getpid(),
                         started_at=now, seen_at=now)
    s.add(row)
    s.flush()
    old = list(s.scalars(select(DaemonInstance).order_by(DaemonInstance.id.desc())
                         .offset(KEEP)))
    for r in old:
        s.delete(r)
    return row.id


def beat(s: Session, instance_id: int, now: datetime.datetime,
         stopped: bool = False) -> None:
    """One UPDATE: it runs on every timer pass."""
    values = {"seen_at": now, **({"stopped_at": now} if stopped else {})}
    s.execute(update(DaemonInstance).where(DaemonInstance.id == instance_id).values(**values))


def instances(s: Session) -> list[DaemonInstance]:
    return list(s.scalars(select(DaemonInstance).order_by(DaemonInstance.id)))

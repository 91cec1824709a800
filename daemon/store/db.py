"""Engine and sessions; schema changes only through Alembic migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_setup(engine: Engine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers queue instead of failing.

    pysqlite's own transaction handling starts DEFERRED transactions, which in WAL mode can
    fail with "database is locked" when a read transaction later tries to write. Taking the
    write lock at BEGIN lets busy_timeout do its job.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a 250 means the bytes survive power loss
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, connect_timeout: int | None = None) -> Engine:
    """`connect_timeout`: seconds a PostgreSQL connection may take to be made (libpq's own
    setting, at least 2); None waits as long as the network does, which a command that
    must answer (`ringi rules check`) cannot afford against a host that drops packets."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_setup(engine)
        return engine
    connect_args = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         connect_args=connect_args)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (run on every start)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def rowcount(result: Result[Any]) -> int:
    """Rows touched by an UPDATE/DELETE (typed access to CursorResult.rowcount)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def insert_if_absent(session: Session, model: Any, values: dict[str, Any],
                     keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT (keys) DO NOTHING; True if this call created the row.

    Two writers racing to create the same row both succeed: one inserts, the other waits for
    it (PostgreSQL) or runs after it (SQLite BEGIN IMMEDIATE) and inserts nothing. Whether a
    row was made is read from RETURNING: psycopg reports no rowcount for these inserts.
    """
    dialect = session.get_bind().dialect.name
    module: Any = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise ValueError(f"unsupported database {dialect!r} (SQLite or PostgreSQL)")
    table = model.__table__
    stmt = (module.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
            .returning(*table.primary_key.columns))
    return session.execute(stmt).first() is not None


class Store:
    """The engine plus a session factory; passed explicitly, never global."""

    def __init__(self, url: str, connect_timeout: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, connect_timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

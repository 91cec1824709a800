"""Fixtures: each database backend, a capturing relay, and a running daemon."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.app import App
from daemon.config import Config
from tests.support import CapturingRelay, free_port, make_config

PG_URL = os.environ.get("RINGI_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test session."""
    if not PG_URL:
        pytest.skip("RINGI_TEST_DATABASE_URL is not set")
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"ringi_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
        ), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _reset_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs on SQLite and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ringi.db'}"
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return url


@pytest.fixture
def relay() -> Iterator[CapturingRelay]:
    server = CapturingRelay()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Config:
    return make_config(tmp_path, db_url, relay.port, free_port())


@pytest.fixture
def daemon(config: Config) -> Iterator[App]:
    """ringi running in-process: real SMTP listener, real runners, real relay."""
    app = App(config)
    app.prepare()
    app.start()
    yield app
    app.stop()

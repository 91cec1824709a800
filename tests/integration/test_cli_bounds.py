"""Commands answer promptly and readably whatever they are given: `ringi rules check`
against a PostgreSQL server that accepts connections and never answers, and numbers on the
command line that no column holds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import rules
from tests.support import free_port, make_config, ringi, write_config


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port whose kernel completes the handshake (the listen backlog) and then
    nothing: what a hung server or a half-dead load balancer looks like to a client."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_rules_check_against_a_silent_database_fails_promptly(
        tmp_path: Path, silent_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "CONNECT_TIMEOUT", 2)  # libpq's minimum; 10 s in production
    url = f"postgresql+psycopg://ringi@127.0.0.1:{silent_server}/ringi"
    cfg_file = write_config(make_config(tmp_path, url, None, free_port()), tmp_path)
    started = time.monotonic()
    result = ringi(cfg_file, "rules", "check")
    took = time.monotonic() - started
    assert took < 15, f"rules check took {took:.1f} s against a silent server"
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    [fail] = [line for line in lines if line.startswith("FAIL  database:")]
    assert fail.startswith("FAIL  database: cannot be reached (no answer within 2 s: ")
    assert fail.endswith("sets stored by mail, the stored directory and the versions in "
                         "force are not checked")
    # The checks that need no database still ran: the rule files were listed.
    assert any(line.startswith("travel ") and " workflow " in line for line in lines), lines


@pytest.mark.parametrize("item", ["9" * 19, "9" * 5000, "0", "-1"])
def test_queue_retry_refuses_ids_no_queue_item_can_have(tmp_path: Path, item: str) -> None:
    cfg_file = write_config(make_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", None,
                                        free_port()), tmp_path)
    result = ringi(cfg_file, "queue", "retry", "--", item)
    assert result.exit_code == 2, result.output
    assert "Invalid value for 'ITEM_ID'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output) < 300, "the value is quoted shortened"


def test_audit_show_limit_past_a_bigint_is_refused_not_sent_to_the_database(
        tmp_path: Path, db_url: str) -> None:
    cfg_file = write_config(make_config(tmp_path, db_url, None, free_port()), tmp_path)
    huge = ringi(cfg_file, "audit", "show", "--limit", "9" * 19)
    assert huge.exit_code == 2 and "Invalid value for '--limit'" in huge.output, huge.output
    assert huge.exception is None or isinstance(huge.exception, SystemExit)
    ok = ringi(cfg_file, "audit", "show", "--limit", str(2**63 - 1))
    assert ok.exit_code == 0, ok.output

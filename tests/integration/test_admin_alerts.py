"""Administrator alerts: one mail per problem and interval, in the transaction that caused it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.store.models import AdminAlert, OutboundMail
from tests.support import make_config


def _admin_mails(app: App) -> list[OutboundMail]:
    with app.store.transaction() as s:
        return list(s.scalars(select(OutboundMail).where(OutboundMail.template == "admin_alert")))


def test_one_mail_per_key_and_interval(tmp_path: Path, db_url: str) -> None:
    clock = FrozenClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    app = App(make_config(tmp_path, db_url, None, 0), clock=clock)
    app.prepare()
    try:
        for _ in range(5):
            with app.store.transaction() as s:
                app.alerts.tell(s, "dead:outbound:7", "Dead letter: outbound 7",
                                "Run: ringi queue retry 7")
        with app.store.transaction() as s:  # another problem is its own mail
            assert app.alerts.tell(s, "folder:/srv/drop", "Drop folder disabled", "why")
        mails = _admin_mails(app)
        assert [m.recipient for m in mails] == ["admin@example.com"] * 2
        assert "ringi queue retry 7" in mails[0].raw.decode()
        with app.store.transaction() as s:
            row = s.get(AdminAlert, "dead:outbound:7")
            assert row is not None and row.suppressed == 4
        clock.advance(timedelta(days=1, seconds=1))  # a day later the same problem is told again
        with app.store.transaction() as s:
            assert app.alerts.tell(s, "dead:outbound:7", "Dead letter: outbound 7", "again")
        assert len(_admin_mails(app)) == 3
        # An alert whose transaction rolls back leaves no mail and no record.
        try:
            with app.store.transaction() as s:
                app.alerts.tell(s, "rolled-back", "x", "y")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        with app.store.transaction() as s:
            assert s.get(AdminAlert, "rolled-back") is None
        assert len(_admin_mails(app)) == 3
    finally:
        app.stop()

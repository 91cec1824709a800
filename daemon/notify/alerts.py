"""Mail to the administrator about something only an operator can fix.

Dead letters, unusable folders, broken rule files, bounced notices: each is told once per
`key` and interval (default a day), so a problem that persists never floods anyone's inbox.
The key's last mail time lives in `admin_alerts`, in the caller's transaction, so an alert
exists iff the change that caused it does. Every alert is also logged (WARNING) once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.directory.lookup import member
from daemon.notify.notifier import Notifier
from daemon.store.models import AdminAlert, Case

log = logging.getLogger(__name__)

KEY_MAX = 300
DEFAULT_EVERY = timedelta(days=1)


class AdminAlerts:
    """`admin_id` is `[workflow] admin`, the person asked when nobody else can be."""

    def __init__(self, notifier: Notifier, clock: Clock, admin_id: str) -> None:
        self.notifier = notifier
        self.clock = clock
        self.admin_id = admin_id

    def tell(self, s: Session, key: str, subject: str, body: str, *,
             case: Case | None = None, every: timedelta = DEFAULT_EVERY) -> bool:
        """Queue one `admin_alert` mail unless `key` was told within `every`.

        `subject` and `body` are plain English+Japanese-neutral text written by the caller
        (item, reason, the command that fixes it). True if a mail was queued.
        """
        key = key[:KEY_MAX]
        now = self.clock.now()
        row = s.scalar(select(AdminAlert).where(AdminAlert.key == key).with_for_update())
        if row is not None and row.last_sent_at + every > now:
            row.suppressed += 1
            return False
        if row is None:
            row = AdminAlert(key=key, first_at=now, last_sent_at=now, suppressed=0)
            s.add(row)
        else:
            row.last_sent_at = now
            row.suppressed = 0
        log.warning("administrator alert [%s]: %s", key, subject)
        admin = member(s, self.admin_id)
        if admin is None:
            log.error("no administrator %r in the directory; alert [%s] only logged: %s",
                      self.admin_id, key, body)
            return False
        self.notifier.to_member(s, "admin_alert", admin,
                                {"recipient": admin.display_name(admin.locale),
                                 "alert_subject": subject, "alert_body": body}, case)
        return True

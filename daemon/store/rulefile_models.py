"""The last good content of each case type file and of the destinations file.

Those files are read before anything else at start; when one is refused, the newest stored
content that still loads stays in force in its place (daemon.rulefiles). Workflow templates
and condition sets keep their versions in their own tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.models import Base, UTCDateTime


class RuleFileVersion(Base):
    __tablename__ = "rule_file_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))  # "case type", "destinations"
    path: Mapped[str] = mapped_column(String(1000), index=True)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of content
    content: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""The data attached to an execution request, in the destination's format.

One record per case (number, type, title, requester, approval time and every form field)
rendered as JSON, CSV or `key: value` text, so a supplier's order system can read the
order without parsing a human mail. Money stays the exact decimal text it was stored as
(no float rounding); dates are ISO 8601; lists are arrays (JSON) or `;`-joined (CSV, text).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from daemon.notify.compose import OutgoingFile

MEDIA = {"json": ("application", "json", "json"), "csv": ("text", "csv", "csv"),
         "text": ("text", "plain", "txt")}


@dataclass(frozen=True)
class Record:
    number: str
    case_type: str
    title: str
    requester_id: str
    requester_name: str
    requester_email: str
    requester_unit: str
    approved_at: dt.datetime
    fields: dict[str, Any]  # in the case type's field order

    def flat(self) -> dict[str, Any]:
        """One level of keys: the CSV columns and the text lines."""
        return {"case_number": self.number, "case_type": self.case_type, "title": self.title,
                "requester_id": self.requester_id, "requester_name": self.requester_name,
                "requester_email": self.requester_email, "requester_unit": self.requester_unit,
                "approved_at": self.approved_at.isoformat(), **self.fields}

    def nested(self) -> dict[str, Any]:
        return {"case_number": self.number, "case_type": self.case_type, "title": self.title,
                "requester": {"id": self.requester_id, "name": self.requester_name,
                              "email": self.requester_email, "unit": self.requester_unit},
                "approved_at": self.approved_at.isoformat(), "fields": self.fields}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def render(record: Record, fmt: str, name: str, encoding: str = "utf-8") -> OutgoingFile | None:
    """The attachment for `fmt` ("none": no attachment); `name` is without extension.

    Raises UnicodeEncodeError when the text cannot be written in `encoding` (e.g. an emoji
    in a Shift_JIS CSV): better no order than a garbled one.
    """
    if fmt == "none":
        return None
    maintype, subtype, ext = MEDIA[fmt]
    if fmt == "json":
        text = json.dumps(record.nested(), ensure_ascii=False, indent=2) + "\n"
        return OutgoingFile(f"{name}.{ext}", maintype, subtype, text.encode("utf-8"))
    flat = record.flat()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
        writer.writerow(list(flat))
        writer.writerow([_cell(v) for v in flat.values()])
        text = out.getvalue()
    else:
        text = "".join(f"{k}: {_cell(v)}\n" for k, v in flat.items())
    return OutgoingFile(f"{name}.{ext}", maintype, subtype, text.encode(encoding), encoding)

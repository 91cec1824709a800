"""Japanese legacy encodings end to end: what `ringi case show` prints is the right Unicode."""

from __future__ import annotations

import base64
import os
import smtplib
from pathlib import Path

from daemon.app import App
from tests.support import (
    REQUEST,
    CapturingRelay,
    free_port,
    make_config,
    ringi,
    wait_until,
    write_config,
)

BODY = ("種別: travel\n出張先: 名古屋（栄）\n目的: {purpose}\n出発日: 2026年11月10日\n"
        "帰着日: 2026/11/11\n金額: 12,345円\n")
# Windows mailers label cp932 text "Shift_JIS": its extensions (①, ～) must survive.
PURPOSE = {"iso-2022-jp": "顧客訪問・打合せ", "shift_jis": "①顧客訪問～打合せ"}
CODEC = {"iso-2022-jp": "iso-2022-jp", "shift_jis": "cp932"}


def b64(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(CODEC[charset])).decode()}?="


def legacy_mail(charset: str, subject: str, attachment: str) -> bytes:
    """What old Japanese mailers send: encoded subject, legacy body, encoded file name."""
    boundary = "b0undary"
    body = base64.b64encode(BODY.format(purpose=PURPOSE[charset]).encode(CODEC[charset]))
    body = body.decode()
    head = (f"From: tanaka@example.com\r\nTo: {REQUEST}\r\n"
            f"Subject: {b64(subject, charset)}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n')
    text_part = (f"--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\n"
                 f"Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n")
    file_part = (f"--{boundary}\r\nContent-Type: application/pdf; "
                 f'name="{b64(attachment, charset)}"\r\n'
                 f"Content-Disposition: attachment; filename=\"{b64(attachment, charset)}\"\r\n"
                 f"Content-Transfer-Encoding: base64\r\n\r\n"
                 f"{base64.b64encode(b'%PDF-1.4').decode()}\r\n--{boundary}--\r\n")
    return (head + text_part + file_part).encode("ascii")


def test_legacy_encodings_round_trip(tmp_path: Path, db_url: str,
                                     relay: CapturingRelay) -> None:
    drop = tmp_path / "drop"
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), drop={
        "stable_seconds": 0.2, "rescan_seconds": 0.5,
        "folders": [{"name": "tanaka", "path": str(drop), "person": "tanaka"}]})
    cfg_file = write_config(cfg, tmp_path)
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        with smtplib.SMTP("127.0.0.1", cfg.smtp.port) as c:
            c.sendmail("tanaka@example.com", [REQUEST],
                       legacy_mail("iso-2022-jp", "名古屋出張（JIS）", "領収書.pdf"))
            c.sendmail("tanaka@example.com", [REQUEST],
                       legacy_mail("shift_jis", "名古屋出張（SJIS）", "見積書①.pdf"))
        drop.mkdir(exist_ok=True)
        form = ('type = "travel"\ntitle = "名古屋出張（フォルダ）"\n"出張先" = "名古屋（栄）"\n'
                '"目的" = "①顧客訪問～打合せ"\n"出発日" = 2026-11-10\n"帰着日" = 2026-11-11\n'
                '"金額" = 12345\n')
        name = os.fsdecode("申請書.toml".encode("cp932"))  # a Shift_JIS name on the share
        (drop / name).write_bytes(form.encode("cp932"))
        wait_until(lambda: len(relay.to("sato@example.com")) >= 3, 30, "three requests")
        outputs = []
        for n in (1, 2, 3):
            res = ringi(cfg_file, "case", "show", f"R-{app.clock.now().year}-{n:06d}")
            assert res.exit_code == 0, res.output
            outputs.append(res.output)
    finally:
        app.stop()
    text = "\n".join(outputs)
    for title in ("名古屋出張（JIS）", "名古屋出張（SJIS）", "名古屋出張（フォルダ）"):
        assert title in text
    assert text.count("Destination: 名古屋（栄）") == 3
    assert text.count("Purpose: ①顧客訪問～打合せ") == 2  # cp932 extensions survive
    assert text.count("Purpose: 顧客訪問・打合せ") == 1
    assert text.count("Amount: 12,345") == 3
    assert "attachment: 領収書.pdf" in text and "attachment: 見積書①.pdf" in text
    assert "drop folder tanaka" in text

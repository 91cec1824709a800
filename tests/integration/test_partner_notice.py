"""A partner whose locale is "ja" is told in Japanese where, what, until when and how to
open a delivery, and the README.txt in the delivery is that same text, whose commands run
as written."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import timedelta
from pathlib import Path

from tests.integration.test_publication import PARTNER_MAIL, partner_world, release
from tests.integration.test_publication_guide import bash, readme_commands
from tests.support import CapturingRelay


def test_a_japanese_partner_gets_the_japanese_notice(tmp_path: Path, db_url: str,
                                                     relay: CapturingRelay) -> None:
    w = partner_world(tmp_path, db_url, relay, locale='"ja"')
    try:
        docs = {"図面 D-100.pdf": os.urandom(20_000), "仕様書.txt": "材質 SUS304\n".encode()}
        number = release(w, "drawing", docs)
        notice = w.one(PARTNER_MAIL)
        share = tmp_path / "share" / "kobe"
        [name] = os.listdir(share)
        expires = w.clock.now() + timedelta(days=30)
        assert notice.subject == f"[{number}] 技術資料をお届けしました: Bracket drawing"
        body = notice.body.replace("\r\n", "\n")
        assert "Kobe Precision 御中" in body
        assert f"フォルダー: {share}\n" in body and f"お届け:     {name}\n" in body
        until = f"{expires.year}年{expires.month}月{expires.day}日"
        assert f"保管期限:   {until}（この日を過ぎると削除されます）" in body
        for fname, data in docs.items():
            assert f"  - {fname}（{len(data):,}バイト、SHA-256 " \
                f"{hashlib.sha256(data).hexdigest()}）" in body
        assert "README.txt" in body and "開き方" in body
        readme = (share / name / "README.txt").read_text(encoding="utf-8")
        assert readme == body
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(tmp_path / "kobe.key", home / "partner-private.pem")
        out = bash(readme_commands(readme, "開き方"), home)
        assert out.returncode == 0 and out.stdout.endswith("ALL-DONE\n"), out.stderr
        assert out.stdout.count("Verified OK") == 1 + len(docs)
        for fname, data in docs.items():
            assert (home / f"{name}-files" / fname).read_bytes() == data
    finally:
        w.app.stop()

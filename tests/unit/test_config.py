"""Configuration: defaults, file, environment overrides, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, load_config
from tests.support import ROOT


def test_defaults_are_the_embedded_default() -> None:
    cfg = load_config(None, environ={})
    assert cfg.database_url == "sqlite:///spool/ringi.db"
    assert (cfg.smtp.host, cfg.smtp.port) == ("127.0.0.1", 8025)
    assert cfg.relay.host == ""  # mail goes to the spool outbox
    assert cfg.outbox_dir == Path("spool/outbox")


def test_example_file_is_complete_and_valid() -> None:
    """The commented example must parse and equal the defaults it documents."""
    data = tomllib.loads((ROOT / "ringi.example.toml").read_text())
    example = Config.model_validate(data)
    defaults = Config()
    for section in Config.model_fields:
        if section == "instance":
            continue  # the default name is the host name
        assert getattr(example, section) == getattr(defaults, section), section
    from daemon.config import DropFolder, ImapAccount

    text = (ROOT / "ringi.example.toml").read_text()
    documented = {(sec, key) for sec, body in data.items() for key in body}
    for section, model in Config.model_fields.items():
        fields = getattr(model.annotation, "model_fields", None)
        if fields is None:  # a list of tables, documented as a commented example
            fields = ImapAccount.model_fields
        for key in fields:
            assert (section, key) in documented or f"# {key} =" in text, f"{section}.{key}"
    for key in DropFolder.model_fields:
        assert f"# {key} =" in text, f"drop.folders.{key}"


def test_file_then_environment(tmp_path: Path) -> None:
    f = tmp_path / "ringi.toml"
    f.write_text('[smtp]\nport = 2525\n[mail]\nrequest_address = "Approvals@Corp.example"\n')
    cfg = load_config(f, environ={"RINGI_SMTP__PORT": "2600",
                                  "RINGI_DATABASE__URL": "postgresql+psycopg://db/ringi"})
    assert cfg.smtp.port == 2600
    assert cfg.mail.request_address == "approvals@corp.example"
    assert cfg.mail.domain == "corp.example" and cfg.mail.local_part == "approvals"
    assert cfg.database_url == "postgresql+psycopg://db/ringi"


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("[smtp]\nport = 'x'\n", {}, "smtp.port: Input should be a valid integer"),
        ("[smtp]\nport = 70000\n", {}, "smtp.port: Input should be less than or equal to 65535"),
        ("", {"RINGI_SMTP__PORT": "abc"}, "(from RINGI_SMTP__PORT)"),
        ("[smtp]\nprot = 1\n", {}, "smtp.prot: unknown key"),
        ("[mail]\nrequest_address = 'ringi+x@a.b'\n", {}, "mail.request_address:"),
        ("[cases]\nnumber_format = 'R-{year}'\n", {},
         "cases.number_format: Value error, must contain {seq"),
        ("[database]\nurl = 'mysql://x'\n", {}, "database.url:"),
        ("[smtp\n", {}, "not valid TOML"),
        ("[workflow]\ntimezone = 'Mars/Olympus'\n", {}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, env: dict[str, str],
                                 expected: str) -> None:
    f = tmp_path / "ringi.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ=env)
    assert expected in str(exc.value)
    assert "\n" not in str(exc.value)


def test_check_config_cli(tmp_path: Path) -> None:
    f = tmp_path / "ringi.toml"
    f.write_text("[smtp]\nport = 2525\n")
    ok = subprocess.run([sys.executable, "-m", "daemon", "--config", str(f), "check-config"],
                        capture_output=True, text=True, env={"RINGI_RELAY__HOST": "mx.corp",
                                                             "PATH": "/usr/bin"})
    assert ok.returncode == 0, ok.stderr
    printed = tomllib.loads(ok.stdout)
    assert printed["smtp"]["port"] == 2525 and printed["relay"]["host"] == "mx.corp"
    f.write_text('[[drop.folders]]\nname = "t"\npath = "spool/drop/t"\nperson = "tanaka"\n'
                 '[[imap]]\nname = "corp"\nhost = "mail"\nusername = "u"\n'
                 'password_file = "/etc/ringi/imap.password"\n')
    lists = subprocess.run([sys.executable, "-m", "daemon", "--config", str(f), "check-config"],
                           capture_output=True, text=True)
    assert lists.returncode == 0, lists.stderr
    printed = tomllib.loads(lists.stdout)
    assert printed["drop"]["folders"][0]["path"] == "spool/drop/t"
    assert printed["imap"][0]["password_file"] == "/etc/ringi/imap.password"
    f.write_text("[queue]\nmax_attempts = 0\n")
    bad = subprocess.run([sys.executable, "-m", "daemon", "--config", str(f), "check-config"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "queue.max_attempts" in bad.stderr

"""Partners in the database: synced from files, added and re-keyed by command, audited."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from daemon.app import App, StartupError
from daemon.audit.trail import AuditTrail
from daemon.cli.main import cli
from daemon.clock import FrozenClock
from daemon.publication.partners import PartnerError, PartnerRegistry
from daemon.store.db import Store
from tests.support import ROOT, free_port, make_config, write_config

TYPES = {"design_release", "purchase", "travel"}
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def pem_of(key: Any) -> str:
    return str(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())


@pytest.fixture(scope="module")
def keys() -> list[str]:
    """Three partner public keys (RSA-3072), made once for the module."""
    return [pem_of(rsa.generate_private_key(public_exponent=65537, key_size=3072))
            for _ in range(3)]


def partner(name: str, key: str | None, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name, "title": f"{name.title()} Ltd.", "emails": [f"cad@{name}.example"],
        "locale": "ja", "public_key": key, "folder": f"/srv/partners/{name}",
        "folder_owner": "ringi", "folder_group": f"p-{name}", "folder_mode": "0750",
        "case_types": ["design_release"], "max_delivery_mb": 512, "volume_mb": 50,
        "retention_days": 30,
    }
    data.update(over)
    if key is None:
        del data["public_key"]
    return data


def write(directory: Path, data: dict[str, Any], stem: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem or data['name']}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


class Env:
    def __init__(self, store: Store) -> None:
        self.store, self.clock = store, FrozenClock(T0)
        self.trail = AuditTrail(self.clock)
        self.registry = PartnerRegistry(self.clock, self.trail.append, TYPES)

    def sync(self, directory: Path) -> list[str]:
        with self.store.transaction() as s:
            self.trail.lock(s)
            return self.registry.sync_files(s, directory)

    def get(self, name: str) -> Any:
        with self.store.transaction() as s:
            return self.registry.get(s, name)

    def audit(self) -> list[tuple[str, str | None, str]]:
        with self.store.transaction() as s:
            assert self.trail.verify(s) == []
            return [(e.kind, e.actor, e.subject) for e in self.trail.recent(s, None, 100)]


@pytest.fixture
def env(db_url: str) -> Iterator[Env]:
    store = Store(db_url)
    store.migrate()
    yield Env(store)
    store.dispose()


def test_sync_new_unchanged_changed_removed(env: Env, tmp_path: Path, keys: list[str]) -> None:
    d = tmp_path / "partners"
    osaka = write(d, partner("osaka", keys[0]))
    write(d, partner("nagoya", keys[1], document_classes=["drawing"]))
    first = env.sync(d)
    a, b = env.get("osaka").fingerprint, env.get("nagoya").fingerprint
    assert first == [f"partner nagoya: added from {d / 'nagoya.toml'} (key {b[:12]}…)",
                     f"partner osaka: added from {osaka} (key {a[:12]}…)"]
    view = env.get("osaka")
    assert (view.origin, view.source, view.active, view.folder_mode) == ("file", str(osaka),
                                                                         True, 0o750)
    assert view.emails == ("cad@osaka.example",) and view.max_bytes == 512 * 1024 * 1024
    assert [(k.fingerprint, k.retired_at) for k in view.keys] == [(a, None)]
    assert view.may_receive("design_release") and not view.may_receive("travel")
    assert env.get("nagoya").may_receive("design_release", "drawing")
    assert not env.get("nagoya").may_receive("design_release", "invoice")

    env.clock.advance(timedelta(hours=1))
    assert env.sync(d) == []  # unchanged files change nothing
    assert env.get("osaka").updated_at == T0

    env.clock.advance(timedelta(hours=1))
    write(d, partner("osaka", keys[2], emails=["new@osaka.example"]))
    lines = env.sync(d)
    view = env.get("osaka")
    c = view.fingerprint
    assert c not in (a, b)
    assert lines == [f"partner osaka: updated from {osaka} (emails)",
                     f"partner osaka: key {a[:12]}… retired, key {c[:12]}… in force "
                     f"(from {osaka})"]
    assert view.public_key == keys[2] and view.emails == ("new@osaka.example",)
    assert [(k.fingerprint, k.retired_at) for k in view.keys] == [
        (a, T0 + timedelta(hours=2)), (c, None)]

    (d / "nagoya.toml").unlink()
    assert env.sync(d) == [f"partner nagoya: deactivated (its file {d / 'nagoya.toml'} is gone)"]
    assert not env.get("nagoya").active
    assert not env.get("nagoya").may_receive("design_release", "drawing")
    write(d, partner("nagoya", keys[1], document_classes=["drawing"]))
    assert env.sync(d) == [f"partner nagoya: active again (its file {d / 'nagoya.toml'} is "
                           "back)"]
    assert env.get("nagoya").active and env.get("nagoya").fingerprint == b
    assert env.audit() == [
        ("partner added", None, "partner nagoya"), ("partner added", None, "partner osaka"),
        ("partner updated", None, "partner osaka"), ("partner deactivated", None,
                                                     "partner nagoya"),
        ("partner updated", None, "partner nagoya")]


def test_a_retired_key_does_not_come_back_from_a_file(env: Env, tmp_path: Path,
                                                      keys: list[str]) -> None:
    d = tmp_path / "partners"
    path = write(d, partner("osaka", keys[0]))
    env.sync(d)
    env.clock.advance(timedelta(days=1))
    with env.store.transaction() as s:
        env.trail.lock(s)
        old, new = env.registry.rotate_key(s, "osaka", keys[1], "admin")
    assert env.get("osaka").fingerprint == new != old
    assert env.sync(d) == []  # the file did not change: the rotated key stays
    write(d, partner("osaka", keys[0], title="Osaka Dies"))  # edited, still the old key
    lines = env.sync(d)
    assert lines == [
        f"partner osaka: updated from {path} (title)",
        f"partner osaka: {path} names key {old[:12]}…, retired on 2026-11-03; key "
        f"{new[:12]}… stays in force (put the new key in the file, or use `ringi partners "
        "rotate-key`)"]
    view = env.get("osaka")
    assert view.fingerprint == new and view.title == "Osaka Dies"
    assert [k.retired_at is None for k in view.keys] == [False, True]
    assert ("partner key rotated", "admin", "partner osaka") in env.audit()


def test_rotate_key_refusals(env: Env, tmp_path: Path, keys: list[str]) -> None:
    env.sync(write(tmp_path / "p", partner("osaka", keys[0])).parent)
    ec_pem = pem_of(ec.generate_private_key(ec.SECP256R1()))
    with env.store.transaction() as s:
        for name, pem, why in [("nobody", keys[1], "no partner 'nobody'"),
                               ("osaka", keys[0], "already osaka's key in force"),
                               ("osaka", ec_pem, "an EC key cannot be used")]:
            with pytest.raises(PartnerError) as caught:
                env.registry.rotate_key(s, name, pem, None, source="k.pem")
            assert why in caught.value.errors[0]
    assert len(env.get("osaka").keys) == 1


def test_files_are_checked_together_and_nothing_is_applied(env: Env, tmp_path: Path,
                                                            keys: list[str]) -> None:
    d = tmp_path / "partners"
    a = write(d, partner("osaka", keys[0]), "a")
    b = write(d, partner("osaka", keys[1]), "b")
    c = write(d, partner("kyoto", keys[2], folder="/srv/partners/osaka/"))
    bad = write(d, partner("zeta", keys[2], folder_mode="0777"))
    with pytest.raises(PartnerError) as caught:
        env.sync(d)
    assert caught.value.errors == [
        f"{b}: name: partner 'osaka' is also defined by {a}",
        f"{c}: folder: /srv/partners/osaka/ is also osaka's folder; each partner needs its own",
        f"{bad}: folder_mode: 0777 lets the group and others write: they could replace or "
        "remove a delivery; use e.g. \"0750\" (ringi writes, the partner's group reads)"]
    with env.store.transaction() as s:
        assert env.registry.all(s) == []


def test_app_syncs_the_sample_and_refuses_a_broken_partner_file(
        tmp_path: Path, db_url: str) -> None:
    app = App(make_config(tmp_path, db_url, None, free_port()))
    app.prepare()
    with app.store.transaction() as s:
        view = app.partners.get(s, "kobe-precision")
    assert view is not None and view.origin == "file" and view.bits == 3072
    assert view.folder == Path("spool/partners/kobe-precision")
    app.stop()
    d = tmp_path / "partners"
    path = write(d, partner("osaka", pem_of(rsa.generate_private_key(65537, 2048)),
                            case_types=["lunch"]))
    app = App(make_config(tmp_path, db_url, None, free_port(),
                          publication={"partners_dir": str(d)}))
    with pytest.raises(StartupError) as caught:
        app.prepare()
    assert caught.value.problems == [
        f"{path}: public_key: the RSA key has 2048 bits; at least 3072 are required (smaller "
        "keys are not rated safe beyond 2030)",
        f"{path}: case_types: unknown case type(s) 'lunch' (known: design_release, purchase, "
        "travel)"]
    app.stop()


def test_cli_add_list_show_rotate(tmp_path: Path, db_url: str, keys: list[str]) -> None:
    cfg = make_config(tmp_path, db_url, None, free_port(),
                      publication={"partners_dir": str(tmp_path / "none")})
    conf = ["--config", str(write_config(cfg, tmp_path))]
    run = CliRunner().invoke
    assert run(cli, [*conf, "partners", "list"]).output == "no partners\n"
    shutil.copy(ROOT / "rules" / "partners" / "kobe-precision.pub.pem", tmp_path / "k.pem")
    f = write(tmp_path / "in", partner("kobe", None, public_key_file="../k.pem"))
    added = run(cli, [*conf, "partners", "add", str(f), "--by", "admin"])
    assert added.exit_code == 0, added.output
    fp1 = added.output.split()[-1]
    assert added.output == f"partner kobe added: key RSA-3072 sha256 {fp1}\n"
    again = run(cli, [*conf, "partners", "add", str(f)])
    assert again.exit_code == 2 and "partner 'kobe' already exists" in again.output

    bad = write(tmp_path / "in", partner("zeta", keys[0], folder_mode="0770", emails=[]))
    refused = run(cli, [*conf, "partners", "add", str(bad)])
    assert refused.exit_code == 2
    assert refused.output == (
        f"ringi: {bad} refused, nothing added:\n"
        f"  {bad}: emails: must list at least one of mail addresses\n"
        f"  {bad}: folder_mode: 0770 lets the group write: they could replace or remove a "
        "delivery; use e.g. \"0750\" (ringi writes, the partner's group reads)\n")

    listed = run(cli, [*conf, "partners", "list"]).output
    assert listed.startswith(f"kobe                     active   key {fp1[:16]}  "
                             "design_release  (cli) Kobe Ltd.")
    (tmp_path / "new.pem").write_text(keys[1])
    rotated = run(cli, [*conf, "partners", "rotate-key", "kobe", str(tmp_path / "new.pem"),
                        "--by", "admin"])
    assert rotated.exit_code == 0, rotated.output
    fp2 = rotated.output.split()[-3]
    assert rotated.output == (f"partner kobe: key {fp1} retired\n"
                              f"partner kobe: key {fp2} in force\n")
    (tmp_path / "ec.pem").write_text(pem_of(ec.generate_private_key(ec.SECP256R1())))
    ec_try = run(cli, [*conf, "partners", "rotate-key", "kobe", str(tmp_path / "ec.pem")])
    assert ec_try.exit_code == 2
    assert f"{tmp_path / 'ec.pem'}: an EC key cannot be used" in ec_try.output

    shown = run(cli, [*conf, "partners", "show", "kobe"])
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert lines[0] == "kobe  Kobe Ltd."
    assert f"  origin:           cli ({f})" in lines
    assert "  emails:           cad@kobe.example" in lines
    assert "  folder:           /srv/partners/kobe (owner ringi, group p-kobe, mode 0750)" \
        in lines
    assert "  document classes: any" in lines and "  max delivery:     512 MB" in lines
    assert f"  key in force:     RSA-3072 sha256 {fp2}" in lines
    history = lines[lines.index("  key history:") + 1:]
    assert [h.split()[0] for h in history] == [fp1, fp2]
    assert "retired" in history[0] and history[1].endswith("in force")
    missing = run(cli, [*conf, "partners", "show", "nobody"])
    assert missing.exit_code == 1 and missing.output == "ringi: no partner nobody\n"

    audit = run(cli, [*conf, "audit", "show", "--subject", "partner kobe"]).output
    assert "partner added" in audit and "partner key rotated" in audit and "admin" in audit
    assert run(cli, [*conf, "audit", "verify"]).exit_code == 0


def test_rules_check_validates_partner_files(tmp_path: Path, db_url: str,
                                             keys: list[str]) -> None:
    d = tmp_path / "partners"
    d.mkdir()
    shutil.copy(ROOT / "rules" / "partners" / "kobe-precision.toml", d / "kobe.toml")
    shutil.copy(ROOT / "rules" / "partners" / "kobe-precision.pub.pem", d)
    cfg = make_config(tmp_path, db_url, None, free_port(), publication={"partners_dir": str(d)})
    conf = ["--config", str(write_config(cfg, tmp_path))]
    ok = CliRunner().invoke(cli, [*conf, "rules", "check"])
    assert ok.exit_code == 0, ok.output
    assert ("partner kobe-precision: design_release -> spool/partners/kobe-precision "
            f"(RSA-3072 key 02288d706c37fab8, {d / 'kobe.toml'})") in ok.output
    bad = write(d, partner("osaka", keys[0], folder="spool/partners/kobe-precision",
                           volume_mb=0))
    out = CliRunner().invoke(cli, [*conf, "rules", "check"])
    assert out.exit_code == 1
    assert f"FAIL  {bad}: volume_mb: must be a whole number of at least 1\n" in out.output
    assert "1 check(s) failed" in out.output


def test_a_starting_daemon_waits_for_another_ones_partner_sync(tmp_path: Path,
                                                              db_url: str) -> None:
    first = App(make_config(tmp_path / "a", db_url, None, free_port()))
    second = App(make_config(tmp_path / "b", db_url, None, free_port()))
    first.store.migrate()
    done: list[list[str]] = []
    with first.store.transaction() as s:
        first.audit.lock(s)  # the first daemon is in the middle of its start-up sync...
        thread = threading.Thread(target=lambda: done.append(second.sync_partners()))
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # ...so the second one waits for it
        lines = first.partners.sync_files(s, first.cfg.partners_dir)
    thread.join(20)
    first.stop()
    second.stop()
    assert [line.split(":")[0] for line in lines] == ["partner kobe-precision"]
    assert done == [[]]  # it saw the committed partner: nothing added twice


def test_a_folder_is_never_shared_with_an_active_partner(env: Env, tmp_path: Path,
                                                         keys: list[str]) -> None:
    kyoto = env.registry.load_file(write(tmp_path / "cli", partner("kyoto", keys[0])))
    with env.store.transaction() as s:
        env.registry.add(s, kyoto, actor="admin")
    d = tmp_path / "partners"
    path = write(d, partner("osaka", keys[1], folder="/srv/partners/kyoto"))
    with pytest.raises(PartnerError) as caught:
        env.sync(d)
    assert caught.value.errors == [f"{path}: folder: /srv/partners/kyoto is already kyoto's "
                                   "folder; each partner needs its own"]
    write(d, partner("osaka", keys[1]))
    env.sync(d)
    # A folder handed from one file's partner to another in one go is fine: the first is
    # deactivated by the same sync.
    (d / "osaka.toml").unlink()
    write(d, partner("nara", keys[2], folder="/srv/partners/osaka"))
    lines = env.sync(d)
    nara = env.get("nara").fingerprint
    assert lines == [f"partner nara: added from {d / 'nara.toml'} (key {nara[:12]}…)",
                     f"partner osaka: deactivated (its file {d / 'osaka.toml'} is gone)"]

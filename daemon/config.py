"""The one typed configuration object: TOML file, then RINGI_* environment overrides.

Every key has a default so that `ringi run` with no file starts the embedded default.
Environment overrides use `RINGI_<SECTION>__<KEY>` (double underscore between levels),
e.g. `RINGI_SMTP__PORT=2525`; `RINGI_CONFIG` names the file.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "RINGI_"
DEFAULT_CONFIG_NAMES = ("ringi.toml",)


class ConfigError(Exception):
    """One clear line naming the key that is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InstanceConfig(_Section):
    name: str = Field(default_factory=socket.gethostname)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # A production instance refuses a shifted clock (`ringi --clock-offset`): mail there
    # reaches real people, and a rehearsal's reminders or escalations must not.
    production: bool = False


class PathsConfig(_Section):
    spool: Path = Path("spool")
    rules: Path = Path("rules")
    templates: Path = Path("mailtemplates")


class DatabaseConfig(_Section):
    url: str = ""  # empty: sqlite under the spool folder

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return v


class SmtpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=0, le=65535)
    lmtp: bool = False
    max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)


class MailConfig(_Section):
    request_address: str = "ringi@example.com"
    from_name: str = "ringi"
    token_ttl_hours: int = Field(default=14 * 24, gt=0)
    error_replies_per_hour: int = Field(default=20, ge=0)
    # "none": trust From (only safe when nothing but the company MTA can reach the listener);
    # "authentication-results": require an aligned DMARC/DKIM/SPF pass from a trusted server.
    sender_auth: Literal["none", "authentication-results"] = "none"
    trusted_authserv_ids: list[str] = Field(default_factory=list)
    # How long a stored mail is remembered, so a resend of it (an MTA that lost our 250, the
    # same mail by SMTP and by IMAP) is acknowledged and recorded but not acted on again.
    duplicate_window_days: int = Field(default=7, ge=1, le=3650)
    html: bool = True  # add an HTML alternative (route line, decision buttons) to every mail

    @field_validator("request_address")
    @classmethod
    def _address(cls, v: str) -> str:
        local, sep, domain = v.partition("@")
        if not sep or not local or not domain or "+" in local or " " in v:
            raise ValueError("must be a plain address like ringi@example.com (no '+')")
        return v.lower()

    @property
    def local_part(self) -> str:
        return self.request_address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.request_address.split("@", 1)[1]


class RelayConfig(_Section):
    host: str = ""  # empty: write .eml files to the spool outbox instead
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None  # CA bundle to trust for STARTTLS (a private company CA)
    timeout_seconds: float = Field(default=30.0, gt=0)


class ImapAccount(_Section):
    """One mailbox read over IMAP (several may be configured)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Path | None = None
    username: str
    password_file: Path
    mailbox: str = "INBOX"
    # "flag": mark \Seen plus processed_flag and leave in place; "move": move to move_to.
    processed: Literal["flag", "move"] = "flag"
    processed_flag: str = Field(default="$RingiProcessed", pattern=r"^\$?[A-Za-z0-9_]+$")
    move_to: str = "ringi-processed"
    idle: bool = True  # use IDLE when the server offers it, else poll
    poll_seconds: float = Field(default=60.0, gt=0)
    reconnect_max_seconds: float = Field(default=300.0, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)


class DropFolder(_Section):
    """A watched folder; files dropped in it are requests from one person or department."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    path: Path
    person: str | None = None  # every input is this person's request
    unit: str | None = None  # the file's owner decides who, and must belong to this unit
    # OS login name or numeric uid -> person id, for unit folders (default: login == id).
    owners: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_identity(self) -> DropFolder:
        if (self.person is None) == (self.unit is None):
            raise ValueError("give exactly one of person or unit")
        return self


class DropConfig(_Section):
    folders: list[DropFolder] = Field(default_factory=list)
    # Directory files dropped here are imported like `ringi directory import`.
    admin_folder: Path | None = None
    # An input is taken once its size and time have not changed for this long.
    stable_seconds: float = Field(default=2.0, ge=0)
    # Full rescans happen this often even without file-system events.
    rescan_seconds: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)


class QueueConfig(_Section):
    runners: bool = True  # False: store input only (maintenance, tests)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=30.0, ge=0)
    backoff_max_seconds: float = Field(default=3600.0, ge=0)
    lease_seconds: float = Field(default=600.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)


class DirectoryConfig(_Section):
    file: Path | None = Path("samples/organisation.toml")


class CasesConfig(_Section):
    number_format: str = "R-{year}-{seq:06d}"
    # Documents sent by mail (request, decision, correct, reapply): larger ones, empty ones
    # and these file types are not added to the case, and the sender is told which and why.
    max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    blocked_extensions: list[str] = Field(default_factory=lambda: [
        "exe", "com", "scr", "pif", "bat", "cmd", "vbs", "vbe", "jse", "wsf", "wsh", "hta",
        "msi", "msp", "lnk", "cpl", "ps1", "reg"])

    @field_validator("number_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if "{seq" not in v:
            raise ValueError("must contain {seq}, e.g. R-{year}-{seq:06d}")
        try:
            v.format(year=2026, month=1, seq=1)
        except (KeyError, ValueError, IndexError) as exc:
            fields = "{year}, {month}, {seq}"
            raise ValueError(f"bad format ({exc}); fields are {fields}") from exc
        return v


class WorkflowConfig(_Section):
    # Person asked when a resolver finds nobody (the case never vanishes).
    admin: str = "admin"
    # People who, besides the administrator, may alter a running case's route.
    route_editors: list[str] = Field(default_factory=list)
    # Reminder and escalation delays, counted in business days from when a person was asked.
    reminder_after_days: int = Field(default=2, ge=1)
    escalate_after_days: int = Field(default=5, ge=1)
    business_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])  # Mon=0
    holidays: list[datetime.date] = Field(default_factory=list)
    # The company's time zone (IANA name): budget months and years turn at midnight here.
    timezone: str = "UTC"
    # How often waiting cases are checked for reminders, escalation and people who left.
    timer_seconds: float = Field(default=60.0, gt=0)
    # Hour (0-23, company time zone) of each approver's daily digest; None or -1: none.
    digest_hour: int | None = Field(default=None, ge=-1, le=23)
    # A step whose post is vacant (nobody holds the role, nobody ranks above, no relation):
    # "hold" the case until a directory import fills the post (the administrator is told),
    # or ask the "admin" in the post's place. A workflow file may choose for itself.
    on_vacant: Literal["hold", "admin"] = "hold"
    # A reorganisation reaching its effective time whose verification finds failing cases:
    # commit and "hold" exactly those cases, or "rollback" the whole change (the
    # administrator gets the report either way).
    reorg_on_failure: Literal["hold", "rollback"] = "hold"

    @model_validator(mode="after")
    def _order(self) -> WorkflowConfig:
        if self.escalate_after_days <= self.reminder_after_days:
            raise ValueError("escalate_after_days must be greater than reminder_after_days")
        if not self.business_days or not all(0 <= d <= 6 for d in self.business_days):
            raise ValueError("business_days must list weekdays 0 (Monday) to 6 (Sunday)")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError, OSError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r} (use an IANA "
                             "name such as \"Asia/Tokyo\")") from None
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RelationsConfig(_Section):
    """Approval relations registered by the departments themselves (SPEC 7)."""

    # For a unit, the registrar must "not_member" (not belong to it), must be a "member",
    # or "none" (no rule), as the organisation chooses.
    unit_rule: Literal["not_member", "member", "none"] = "not_member"
    # A proxy is registered by a "responsible" approver (of anything in force then), or
    # only by a responsible approver of the "same_object".
    proxy_rule: Literal["responsible", "same_object"] = "responsible"
    # Registrations per registrar and calendar year (company time zone); none: no cap.
    yearly_cap: int | None = Field(default=None, ge=1)
    # The qualifications when the directory does not give them per person: by rank.
    register_min_rank: int = 0
    approve_min_rank: int = 20
    # Days before its last day that a relation's registrar is warned, daily (0: never).
    warn_days: int = Field(default=7, ge=0, le=366)


class SecurityConfig(_Section):
    token_key_file: Path | None = None  # default: <spool>/secrets/token.key, created 0600


class PublicationConfig(_Section):
    # The company stamp key (PEM, RSA or EC private key). Refused if group- or world-
    # readable. Default: <spool>/secrets/stamp.pem, created 0600 on first start.
    stamp_key_file: Path | None = None
    transmission: Path | None = None  # staging for deliveries; default <spool>/transmission
    partners_dir: Path | None = None  # partner files; default <rules>/partners
    progress_every_mb: int = Field(default=64, ge=1)  # log a long build's progress this often


class Config(_Section):
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    mail: MailConfig = Field(default_factory=MailConfig)
    relay: RelayConfig = Field(default_factory=RelayConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    directory: DirectoryConfig = Field(default_factory=DirectoryConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    imap: list[ImapAccount] = Field(default_factory=list)
    drop: DropConfig = Field(default_factory=DropConfig)
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    relations: RelationsConfig = Field(default_factory=RelationsConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    publication: PublicationConfig = Field(default_factory=PublicationConfig)

    # Derived locations, so no other module joins paths by hand.
    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.paths.spool / 'ringi.db'}"

    @property
    def outbox_dir(self) -> Path:
        return self.paths.spool / "outbox"

    @property
    def blobs_dir(self) -> Path:
        return self.paths.spool / "blobs"

    @property
    def token_key_path(self) -> Path:
        return self.security.token_key_file or self.paths.spool / "secrets" / "token.key"

    @property
    def stamp_key_path(self) -> Path:
        return self.publication.stamp_key_file or self.paths.spool / "secrets" / "stamp.pem"

    @property
    def transmission_dir(self) -> Path:
        return self.publication.transmission or self.paths.spool / "transmission"

    @property
    def partners_dir(self) -> Path:
        return self.publication.partners_dir or self.paths.rules / "partners"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """RINGI_SECTION__KEY=value pairs as a nested dict; JSON values are decoded."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another RINGI_ variable")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_error(exc: ValidationError, env_keys: set[str]) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    origin = ""
    env_name = ENV_PREFIX + "__".join(str(p).upper() for p in err["loc"])
    if env_name in env_keys:
        origin = f" (from {env_name})"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key{origin}"
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{key}: {err['msg']}{shown}{origin}"


def find_config_file(explicit: Path | None, environ: dict[str, str]) -> Path | None:
    if explicit is not None:
        return explicit
    if environ.get("RINGI_CONFIG"):
        return Path(environ["RINGI_CONFIG"])
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    return None


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Build the effective configuration or raise ConfigError with one line."""
    env = dict(os.environ if environ is None else environ)
    path = find_config_file(path, env)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data = _merge(data, _env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, set(env))) from None


def config_as_dict(config: Config) -> dict[str, Any]:
    """TOML-ready dict (paths as strings, None left out) for `ringi check-config`."""
    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if v is not None}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, Path):
            return str(node)
        return node

    result: dict[str, Any] = clean(config.model_dump())
    return result

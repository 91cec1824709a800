"""What every `ringi` command needs: the configuration, and the store it names."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from daemon.cli.output import echo
from daemon.clock import Clock, OffsetClock, SystemClock, describe_offset
from daemon.config import Config, ConfigError, find_config_file, load_config
from daemon.store.db import Store

EXIT_USAGE = 2
BIGINT_MAX = 2**63 - 1  # ids and limits end up in BIGINT columns and LIMIT clauses


class BoundedInt(click.IntRange):
    """A whole number in [min, max] (max at most a BIGINT): a longer digit string is
    refused before int() builds it, and quoted shortened, like any other bad value."""

    def __init__(self, min: int = 1, max: int = BIGINT_MAX) -> None:
        super().__init__(min, max)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, str) and len(value.strip()) > len(str(BIGINT_MAX)) + 1:
            self.fail(f"{value.strip()[:20]}… is not in the range {self._describe_range()}",
                      param, ctx)
        number: int = super().convert(value, param, ctx)
        return number


def cli_config(ctx: click.Context) -> Config:
    """The configuration from --config / $RINGI_CONFIG; a readable error and exit 2 if bad."""
    explicit = ctx.find_root().obj["config_path"]
    try:
        cfg: Config = load_config(explicit)
    except ConfigError as exc:
        echo(f"ringi: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if find_config_file(explicit, dict(os.environ)) is None and not cfg.paths.rules.is_dir():
        # The embedded default only makes sense inside a checkout: say so before anything
        # (a spool, a database) is created in whatever folder this is.
        echo(f"ringi: no configuration file, and {Path.cwd()} is not a ringi checkout (no "
             f"{cfg.paths.rules}/ here).\n  Run ringi from its checkout (scripts/run.sh), or "
             "give a configuration: --config FILE or $RINGI_CONFIG (start from "
             "ringi.example.toml).", err=True)
        sys.exit(EXIT_USAGE)
    return cfg


def open_store(ctx: click.Context) -> Store:
    """The configured store, migrated: record commands need no rules, templates or keys."""
    store = Store(cli_config(ctx).database_url)
    store.migrate()
    return store


def cli_clock(ctx: click.Context, cfg: Config) -> Clock:
    """The system clock, or the shifted one `--clock-offset` / $RINGI_CLOCK_OFFSET asks for
    (already parsed by the option): refused on a production instance, announced loudly."""
    offset = ctx.find_root().obj.get("clock_offset")
    if offset is None:
        return SystemClock()
    if cfg.instance.production:
        echo(f"ringi: clock offset {describe_offset(offset)} refused: this instance is "
             "configured with [instance] production = true", err=True)
        sys.exit(EXIT_USAGE)
    clock = OffsetClock(SystemClock(), offset)
    if not ctx.find_root().obj.get("clock_announced"):
        ctx.find_root().obj["clock_announced"] = True
        message = (f"clock offset {describe_offset(offset)} in effect: now is "
                   f"{clock.now():%Y-%m-%d %H:%M:%S} UTC (real time "
                   f"{clock.base.now():%Y-%m-%d %H:%M:%S} UTC)")
        if ctx.find_root().obj.get("daemon_log"):  # `ringi run`: into the daemon's log
            logging.getLogger("daemon.clock").warning(message)
        else:
            echo(f"ringi: WARNING: {message}", err=True)
    return clock

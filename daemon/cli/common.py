"""What every `ringi` command needs: the configuration, and the store it names."""

from __future__ import annotations

import sys

import click

from daemon.cli.output import echo
from daemon.config import Config, ConfigError, load_config
from daemon.store.db import Store

EXIT_USAGE = 2


def cli_config(ctx: click.Context) -> Config:
    """The configuration from --config / $RINGI_CONFIG; a readable error and exit 2 if bad."""
    try:
        cfg: Config = load_config(ctx.find_root().obj["config_path"])
    except ConfigError as exc:
        echo(f"ringi: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    return cfg


def open_store(ctx: click.Context) -> Store:
    """The configured store, migrated: record commands need no rules, templates or keys."""
    store = Store(cli_config(ctx).database_url)
    store.migrate()
    return store

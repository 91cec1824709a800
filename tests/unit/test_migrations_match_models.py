"""The migrations build exactly the schema the models describe (no forgotten migration)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import daemon.store.condition_models
import daemon.store.digest_models
import daemon.store.directory_models
import daemon.store.instance_models
import daemon.store.publication_models
import daemon.store.relation_models
import daemon.store.reorg_models
import daemon.store.rulefile_models
from daemon.store.db import migrate
from daemon.store.models import Base


def test_no_difference_between_migrations_and_models(tmp_path: Path) -> None:
    assert daemon.store.condition_models.Budget.__tablename__ in Base.metadata.tables
    for model in (daemon.store.instance_models.DaemonInstance,
                  daemon.store.relation_models.RelationHistory,
                  daemon.store.reorg_models.Reorganisation):
        assert model.__tablename__ in Base.metadata.tables
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []

"""Alembic environment: always run with a connection handed in by daemon.store.db."""

from alembic import context

import daemon.store.condition_models
import daemon.store.digest_models
import daemon.store.directory_models
import daemon.store.instance_models
import daemon.store.publication_models
import daemon.store.relation_models
import daemon.store.reorg_models
import daemon.store.rulefile_models  # noqa: F401
from daemon.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

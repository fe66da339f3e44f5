"""Alembic environment: the engine comes from arsync (``config.attributes['engine']``)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import arsync.models  # noqa: F401 - registers the tables on SQLModel.metadata

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        from arsync.config import get_settings
        from arsync.db import make_engine

        engine = make_engine(get_settings().sqlalchemy_url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()

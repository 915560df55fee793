"""Alembic environment: runs migrations on the async engine of the configured URL."""

from __future__ import annotations

import asyncio
import contextlib

from alembic import context
from sqlalchemy.engine import Connection

from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.tables import metadata


def _run(connection: Connection) -> None:
    with _prepared(connection):
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def _prepared(connection: Connection) -> contextlib.AbstractContextManager[None]:
    if connection.dialect.name in ("mysql", "mariadb"):
        from cadenza.infrastructure.sql import mysql

        return mysql.migrating(connection)
    return contextlib.nullcontext()


async def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


asyncio.run(_main())

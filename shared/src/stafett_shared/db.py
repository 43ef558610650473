"""Database access for read models: async SQLAlchemy on SQLite (embedded) or PostgreSQL."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    bindparam,
    event,
)
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "AsyncSession",
    "UtcDateTime",
    "as_utc",
    "async_url",
    "combined_metadata",
    "create_engine",
    "create_sync_engine",
    "parse_time",
    "position_table",
    "quarantine_table",
    "run_migrations",
    "sessionmaker",
    "sync_url",
    "upsert",
    "writer",
]


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A time read back from a database in UTC: SQLite returns naive datetimes, which
    Stafett always wrote in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time: written in UTC, and read back aware, in UTC, on every database.

    ``DateTime(timezone=True)`` keeps the offset on PostgreSQL, but SQLite stores the wall
    clock and drops the offset: an aware time in another zone was stored wrong, and every
    time came back naive, so an answer said ``06:03:47`` with no zone. A time without a zone
    is taken to be UTC, as Stafett always wrote."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        return as_utc(value)


_positions_metadata = MetaData()
position_table = Table(
    "projection_position",
    _positions_metadata,
    Column("name", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""The last stream sequence each projection applied, written in the same transaction as its rows."""


def _quarantine_columns() -> tuple[Column[Any], ...]:
    return (
        Column("projection", String(64), primary_key=True),
        Column("seq", BigInteger, primary_key=True),
        Column("subject", String(200), nullable=False),
        Column("reason", String(32), nullable=False),
        Column("event_index", Integer, nullable=True),
        Column("quarantined_at", UtcDateTime(), nullable=False),
    )


quarantine_table = Table("projection_quarantine", _positions_metadata, *_quarantine_columns())
"""Stream messages a projection refused and skipped (``stafett_shared.contracts``): where
they are and why, never what they hold. Written in the transaction that moves the position
past them."""


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from event data (``…Z`` or an offset), in UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def async_url(url: str) -> str:
    """Give a database URL its async driver (aiosqlite or asyncpg)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def sync_url(url: str) -> str:
    """Give a database URL its blocking driver (the standard sqlite3 module or psycopg)."""
    url = async_url(url)
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite+pysqlite:" + url.removeprefix("sqlite+aiosqlite:")
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql+asyncpg://")
    return url


def _sqlite_setup(engine: Engine, *, wal_autocheckpoint: int | None = None) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal_autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # Readers begin deferred; writers (see ``writer``) take the write lock at BEGIN, so
        # two writers queue instead of failing when a read lock would need upgrading.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite+aiosqlite:"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def create_sync_engine(
    url: str,
    *,
    busy_timeout_s: float = 30.0,
    wal_autocheckpoint: int | None = None,
    **kwargs: Any,
) -> Engine:
    """A blocking engine on the same database, for work that runs whole in a worker thread
    (one thread hop for a unit of work instead of one per statement). Same pragmas and
    transaction rules as :func:`create_engine`; use :func:`writer` for transactions that
    write.

    On SQLite, ``busy_timeout_s`` is how long a statement waits for another connection's
    lock before it fails (0: at once), and ``wal_autocheckpoint`` (pages; 0 turns it off)
    sets when a commit on these connections also checkpoints the write-ahead log. Neither
    applies to PostgreSQL."""
    url = sync_url(url)
    if url.startswith("sqlite+pysqlite:"):
        engine = sa_create_engine(
            url,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            **kwargs,
        )
        _sqlite_setup(engine, wal_autocheckpoint=wal_autocheckpoint)
        return engine
    return sa_create_engine(url, pool_pre_ping=True, **kwargs)


def _upsert_statement(
    dialect: str, table: Table, values: dict[str, Any], *, update: bool = True
) -> Any:
    """INSERT of a row that, when its primary key exists, updates its other columns (or,
    with ``update=False``, leaves the row as it is); for PostgreSQL or SQLite."""
    keys = [column.name for column in table.primary_key.columns]
    changes = {k: v for k, v in values.items() if k not in keys}
    if dialect == "postgresql":
        pg = pg_insert(table).values(**values)
        return (
            pg.on_conflict_do_update(index_elements=keys, set_=changes)
            if update and changes
            else pg.on_conflict_do_nothing(index_elements=keys)
        )
    lite = sqlite_insert(table).values(**values)
    return (
        lite.on_conflict_do_update(index_elements=keys, set_=changes)
        if update and changes
        else lite.on_conflict_do_nothing(index_elements=keys)
    )


async def upsert(
    session: AsyncSession, table: Table, values: dict[str, Any], *, update: bool = True
) -> None:
    """Insert a row; when its primary key exists, update its other columns (or, with
    ``update=False``, leave the row as it is)."""
    await session.execute(*_upsert(session.get_bind().dialect.name, table, values, update))


@functools.cache
def _upsert_template(dialect: str, table: Table, *, update: bool = True) -> Any:
    """:func:`_upsert_statement` for a whole row, built once: every column a bound parameter
    of its own name, the other columns taken from the row that was refused on a conflict."""
    keys = [column.name for column in table.primary_key.columns]
    others = [column.name for column in table.columns if column.name not in keys]
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(
        {column.name: bindparam(column.name, type_=column.type) for column in table.columns}
    )
    if update and others:
        return insert.on_conflict_do_update(
            index_elements=keys, set_={name: insert.excluded[name] for name in others}
        )
    return insert.on_conflict_do_nothing(index_elements=keys)


def upsert_sync(
    conn: Connection, table: Table, values: dict[str, Any], *, update: bool = True
) -> None:
    """:func:`upsert` on a blocking connection."""
    conn.execute(*_upsert(conn.dialect.name, table, values, update))


def _upsert(
    dialect: str, table: Table, values: dict[str, Any], update: bool
) -> tuple[Any, dict[str, Any] | None]:
    """The statement of an upsert and its parameters. A whole row (a value for every
    column) goes through a statement built once; building one per row costs more than
    running it."""
    if values.keys() == _column_names(table):
        return _upsert_template(dialect, table, update=update), values
    return _upsert_statement(dialect, table, values, update=update), None


@functools.cache
def _column_names(table: Table) -> frozenset[str]:
    return frozenset(table.columns.keys())


@overload
def writer(engine: AsyncEngine) -> AsyncEngine: ...
@overload
def writer(engine: Engine) -> Engine: ...
def writer(engine: AsyncEngine | Engine) -> AsyncEngine | Engine:
    """The engine for transactions that write: on SQLite they begin IMMEDIATE."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def run_migrations(
    engine: AsyncEngine, script_location: Path, *, revision: str = "head"
) -> None:
    """Upgrade the service's read-model schema to the newest Alembic revision (or to
    ``revision``)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def combined_metadata(*parts: MetaData) -> MetaData:
    """One MetaData holding the tables of several, for a service's Alembic history."""
    combined = MetaData()
    for part in parts:
        for table in part.tables.values():
            table.to_metadata(combined)
    return combined


def create_position_table_op() -> None:
    """For a service's first Alembic revision: the projection position table."""
    from alembic import op

    op.create_table(
        "projection_position",
        Column("name", String(64), primary_key=True),
        Column("last_seq", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )


def create_quarantine_table_op() -> None:
    """For a service's Alembic history: the table of quarantined stream messages."""
    from alembic import op

    op.create_table("projection_quarantine", *_quarantine_columns())


def alembic_env(target_metadata: MetaData | None) -> None:
    """The body of every service's ``alembic/env.py``: migrate on the connection that
    ``run_migrations`` hands over (online), or print SQL (offline)."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            literal_binds=True,
        )
    else:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
    with context.begin_transaction():
        context.run_migrations()

"""The database: one engine per process, SQLite or PostgreSQL with the same code.

Two kinds of sessions. `reader()` for queries. `writer()` for read-then-write work that must not
interleave with another writer (receipt intake, the indexer, the oracle): on SQLite it opens the
transaction with `BEGIN IMMEDIATE`, which takes the database's write lock up front (so two
processes never both read a total and both add to it); on PostgreSQL the code that needs it
locks rows with `SELECT ... FOR UPDATE`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, String, create_engine, event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from backend.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_UINT256_DIGITS = 78


class Uint(TypeDecorator[int]):
    """An unsigned integer of up to 256 bits (wei amounts, uint64 sizes), stored as decimal text.

    SQLite's INTEGER and PostgreSQL's BIGINT stop at 2**63 - 1, which 10 ETH in wei already passes;
    these values are only ever compared and summed in Python, so text loses nothing.
    """

    impl = String(_UINT256_DIGITS)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> str | None:
        """int -> decimal text."""
        if value is None:
            return None
        if value < 0:
            raise ValueError("Uint columns hold unsigned values")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> int | None:
        """decimal text -> int."""
        return None if value is None else int(value)


class Database:
    """An engine and its session factories for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database in (None, "", ":memory:"):
                raise ConfigError("use a SQLite file, not an in-memory database (processes share it)")
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # NullPool: a SQLite connection is cheap, and WAL readers must not hold old snapshots.
            self.engine: Engine = create_engine(parsed, echo=echo, poolclass=NullPool)
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(seedmarket_immediate=True), expire_on_commit=False
        )

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with self._reader() as session:
            yield session

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A session in one write transaction, committed at the end unless an exception escapes."""
        with self._writer() as session, session.begin():
            yield session

    def session(self) -> Session:
        """A plain session (the API's request scope); the caller commits."""
        return self._reader()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe at every start)."""
        with self.engine.begin() as connection:
            config = alembic_config(connection)
            command.upgrade(config, "head")

    def has_schema(self) -> bool:
        """Whether migrations have ever run here."""
        return inspect(self.engine).has_table("alembic_version")

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for our migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred and late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("seedmarket_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

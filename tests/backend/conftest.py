"""Fixtures of the store's tests: fresh Marketplaces on the shared anvil, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.db import Database
from backend.services import Services
from backend.settings import Settings
from dev.devnet import Anvil, Deployed, deploy_marketplace
from tests.backend.helpers import Market, store_settings

POSTGRES_URL = os.environ.get(
    "SEEDMARKET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def deployed(anvil: Anvil, manifest: Path) -> Deployed:
    """A fresh Marketplace: account 0 owns it and is oracle, guardian and treasury; no root delay."""
    return deploy_marketplace(anvil.w3, manifest, owner=anvil.accounts[0], root_delay=0)


@pytest.fixture
def market(anvil: Anvil, deployed: Deployed, manifest: Path) -> Market:
    """Helpers to list and buy on the fresh Marketplace."""
    return Market(anvil, deployed, manifest)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of our own for this test session (dropped at the end)."""
    admin = make_url(POSTGRES_URL)
    name = f"seedmarket_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); set SEEDMARKET_TEST_POSTGRES_URL"
        )
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    return _fresh_url(request.param, tmp_path, request)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (for tests where the database kind does not matter)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The fresh database, migrated."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def settings(anvil: Anvil, deployed: Deployed, db_url: str, manifest: Path, tmp_path: Path) -> Settings:
    """A store's settings on the fresh Marketplace, on each kind of database."""
    return store_settings(anvil, deployed, db_url, manifest, tmp_path)


@pytest.fixture
def sqlite_settings(
    anvil: Anvil, deployed: Deployed, sqlite_url: str, manifest: Path, tmp_path: Path
) -> Settings:
    """A store's settings on the fresh Marketplace, on SQLite only (for slow, process-level tests)."""
    return store_settings(anvil, deployed, sqlite_url, manifest, tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Services]:
    """The store's services (database, chain, settlement) on each kind of database."""
    services = Services.open(settings)
    yield services
    services.close()


@pytest.fixture
def sqlite_store(sqlite_settings: Settings) -> Iterator[Services]:
    """The store's services on SQLite only."""
    services = Services.open(sqlite_settings)
    yield services
    services.close()

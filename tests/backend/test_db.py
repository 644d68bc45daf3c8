"""The database layer: migrations build exactly the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backend.db import Database, Uint
from backend.errors import ConfigError
from backend.models import Base, Purchase


def test_migrations_build_the_schema_the_models_describe(db: Database) -> None:
    db.migrate()  # a second run changes nothing
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_amounts_beyond_64_bits_round_trip(db: Database) -> None:
    huge = 2**256 - 1
    with db.writer() as session:
        session.add(
            Purchase(
                id=1, product_id=1, buyer="0x" + "11" * 20, token="0x" + "00" * 20, price=huge,
                seller_amount=huge, operator_fee=0, seeder_pool=10**30, timestamp=0, block_number=1,
                tx_hash="0x", log_index=0,
            )
        )  # fmt: skip
    with db.reader() as session:
        purchase = session.get(Purchase, 1)
    assert purchase is not None and (purchase.price, purchase.seeder_pool) == (huge, 10**30)


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        Uint().process_bind_param(-1, None)


@pytest.mark.parametrize("url", ["nonsense", "sqlite://", "sqlite:///:memory:"])
def test_unusable_database_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ConfigError):
        Database(url)


def test_the_sqlite_folder_is_created(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'a' / 'b' / 'store.db'}")
    database.migrate()
    assert (tmp_path / "a" / "b" / "store.db").exists()
    database.dispose()

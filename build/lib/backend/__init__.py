"""The seedmarket store: API and pages, database, chain indexer, settlement, Merkle trees, oracle."""

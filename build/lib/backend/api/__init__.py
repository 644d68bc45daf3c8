"""The store's JSON API (FastAPI): catalog, sign-in, library, rewards, epochs."""

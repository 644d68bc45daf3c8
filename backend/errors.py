"""The backend package's exceptions."""


class StoreError(Exception):
    """Base of every error the store raises on bad input or state."""

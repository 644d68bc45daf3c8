"""The client package's exceptions."""


class ClientError(Exception):
    """Base of every error the client raises; the CLI prints its message as one line."""

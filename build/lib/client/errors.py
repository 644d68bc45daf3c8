"""The client package's exceptions."""


class ClientError(Exception):
    """Base of every error the client raises; the CLI prints its message as one line."""


class TransactionReverted(ClientError):
    """The contract refused a call or transaction; `error` is its custom error's signature if known."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error

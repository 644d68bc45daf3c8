"""The backend package's exceptions: one hierarchy under `StoreError`."""


class StoreError(Exception):
    """Base of every error the store raises on bad input or state."""


class ConfigError(StoreError):
    """The settings are incomplete or unsafe; the message says which one to fix."""


class ChainError(StoreError):
    """The chain could not be reached, or answered something the store cannot use."""


class ChainUnavailable(ChainError):
    """The RPC endpoint did not answer; retrying later may work."""


class ContractRevert(ChainError):
    """A contract call or transaction reverted; `error` is the custom error's name when known."""

    def __init__(self, error: str, args: tuple[object, ...] = (), message: str | None = None) -> None:
        super().__init__(message or f"the contract refused: {error}{args if args else ''}")
        self.error = error
        self.error_args = args


class OracleError(StoreError):
    """An epoch could not be closed or posted; the message says why and what to do."""


class AuthError(StoreError):
    """A sign-in or session that is not valid."""


class AuditError(StoreError):
    """A published epoch could not be fetched or does not hold together."""


class NotFoundError(StoreError):
    """The thing asked for does not exist (yet)."""


class ForbiddenError(StoreError):
    """The signed-in wallet may not do this."""


class InvalidInput(StoreError):
    """Well-formed input the store cannot accept (a torrent that does not match its listing, ...)."""


class RateLimited(StoreError):
    """A client asked too often; `retry_after` is how many seconds until it may ask again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

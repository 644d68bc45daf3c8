"""Exceptions of the peer engine."""

from tracker.errors import TrackerError


class PeerError(TrackerError):
    """Base of the peer engine's errors."""


class ProtocolError(PeerError):
    """A peer sent something the protocol does not allow; the connection is dropped."""


class StorageError(PeerError):
    """The torrent's files cannot be read or written as needed."""

"""Exceptions of the µTP transport."""

from tracker.errors import TrackerError


class UtpError(TrackerError):
    """Base of the µTP transport's errors."""


class PacketError(UtpError):
    """A datagram is not a µTP version 1 packet we can read; it is ignored."""

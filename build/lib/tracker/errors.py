"""The tracker package's exceptions."""


class TrackerError(Exception):
    """Base of every error the BitTorrent layer raises on bad input or state."""

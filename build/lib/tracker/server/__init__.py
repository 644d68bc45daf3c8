"""The private HTTP tracker, as a package of its own so that its modules do not share names with
the peer wire's (`tracker.peer`): `http_connection` here frames HTTP requests, where
`tracker.peer.connection` frames BitTorrent messages.

    service          TrackerServer and start_tracker: sockets, clock, swarms, caches, counters
    http_connection  one client connection: frames requests, routes them, answers in order
    http             the small part of HTTP/1.1 a tracker needs
    announce         strict parsing of announce and scrape query strings
    responses        the bencoded answers, written by hand
    swarm            the swarms' peer tables
    access           the TTL cache in front of the store's `tracker.policy.SwarmPolicy`
    receipt_intake   POST /receipts: batches of signed receipts to the store's sink
"""

from tracker.server.service import TrackerConfig, TrackerServer, start_tracker

__all__ = ["TrackerConfig", "TrackerServer", "start_tracker"]

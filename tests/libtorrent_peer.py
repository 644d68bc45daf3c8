"""libtorrent, a client nobody here wrote, as the ordinary peer of the tests."""

from __future__ import annotations

import libtorrent as lt


def lt_session(alert_mask: int = 0) -> lt.session:
    """A libtorrent session on loopback that learns peers from trackers and nowhere else: no DHT,
    LSD, UPnP or NAT-PMP, and no default plugins, so no ut_pex either. Its transports are its
    defaults (µTP preferred, TCP too), as qBittorrent's and Deluge's users have them."""
    return lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "allow_multiple_connections_per_ip": True,  # every peer here is 127.0.0.1
            "ssrf_mitigation": False,  # it would refuse a loopback tracker with a passkey in the path
            "stop_tracker_timeout": 1,  # seconds a closing session waits for `stopped` answers
            "alert_mask": alert_mask,
        },
        flags=0,
    )

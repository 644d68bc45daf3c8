"""The BitTorrent layer of seedmarket: metainfo, the private HTTP tracker, the peer wire with the
receipt extension, and receipt signing and verification. It knows nothing of the store."""

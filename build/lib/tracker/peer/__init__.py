"""The peer engine: BitTorrent peer wire (BEP 3, BEP 6, BEP 10) with the `sm_receipt` extension,
storage, piece picking, choking, receipt credit and the seeder's receipt journal and submitter.

Layers, each the only writer of its own state (tests/peer/test_layering.py enforces it):

- **Wire** (`wire`, `extension`): codecs. Pure functions and frozen values, no state.
- **Connection** (`connection.PeerConnection`): frames and validates the messages of one peer over
  a byte stream it does not know the kind of (an asyncio transport: TCP today, µTP tomorrow), and
  keeps only what the peer told us: its handshake and extension handshake, whether it chokes us
  or is interested, which pieces it has. It reports each validated message to its torrent and
  imports nothing above the wire.
- **Downloading** (`downloading.Downloads`, one per torrent): writes `conn.down`, a
  `DownloadState` (our interest, requests in flight, pipeline depth, strikes, download rate), and
  drives the picker, verification and smart bans.
- **Uploading** (`uploading.Uploads`): writes `conn.up`, an `UploadState` (whether we choke the
  peer, its queued requests, its credit standing, upload rate), chooses upload slots and runs
  super-seeding (`superseed`).
- **Billing** (`billing`, `credit`): receipts and the accounts they feed, both ways; the uploader
  asks an account how much it may serve and counts what it served through the account's methods.
- **Torrent** (`torrent.Torrent`): wires them together: it accepts a peer (`conn.bind`), routes
  the connection's events to the downloader, the uploader and billing, and owns the swarm-wide
  facts (bans, completion, errors). **Session** (`session`): listening, connecting, the disk
  threads and the once-a-second tick.

A layer reads what it needs of another's state, and changes it only by calling that layer.
"""

"""The peer engine: BitTorrent peer wire (BEP 3, BEP 10) with the `sm_receipt` extension, storage,
piece picking, choking, receipt credit and the seeder's receipt journal and submitter."""

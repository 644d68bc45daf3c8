"""The user's side of seedmarket: wallet, buying, downloading and seeding with receipts, rewards."""

"""The `seedmarket` subcommands, one module per area."""

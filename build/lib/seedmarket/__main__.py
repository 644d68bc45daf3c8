"""`python -m seedmarket`: the same as the `seedmarket` command."""

from seedmarket.cli import main

main()

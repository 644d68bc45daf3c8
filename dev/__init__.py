"""Development tools, not part of the installed package: a local chain (devnet), the whole stack on
one machine (devstack, `make run`), a scripted user of the command line (devcli) and the demo.
"""

"""The `repro` command: the parser and shared options in one place, one module per command group.

Turns command-line flags into RunSettings and calls the layers below; bad input ends in one line.
May import: every other layer (nothing imports repro.cli).
"""

"""``python -m acd`` is the same as the ``acd`` command."""

from acd.cli import main

main()

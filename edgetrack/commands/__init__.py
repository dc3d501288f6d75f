"""Subcommands of the ``edgetrack`` command line, one module each (see :mod:`edgetrack.cli`)."""

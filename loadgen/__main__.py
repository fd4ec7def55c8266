"""Run the ``loadgen`` command line with ``python -m loadgen``."""

from loadgen.cli import main

main()

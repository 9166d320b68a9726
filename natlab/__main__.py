"""`python -m natlab` is the `natlab` command, for when the script is not on PATH."""

from natlab.cli import main

main()

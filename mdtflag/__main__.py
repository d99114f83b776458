"""``python -m mdtflag``: the command line."""
from mdtflag.cli.main import main

main()

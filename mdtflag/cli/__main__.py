"""``python -m mdtflag.cli``."""
from mdtflag.cli.main import main

main()

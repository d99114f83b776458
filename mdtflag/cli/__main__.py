"""``python -m mdtflag.cli``: the command line."""

from mdtflag.cli.main import entry

if __name__ == "__main__":
    entry()

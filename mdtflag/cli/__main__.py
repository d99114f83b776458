"""``python -m mdtflag.cli``: the command line."""

from mdtflag.cli.main import main

if __name__ == "__main__":
    main()

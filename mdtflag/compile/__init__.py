"""mdtflag.compile."""

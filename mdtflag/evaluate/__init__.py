"""mdtflag.evaluate."""

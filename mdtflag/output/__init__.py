"""mdtflag.output."""

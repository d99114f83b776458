"""mdtflag.evaluation."""

"""mdtflag.ruleset."""

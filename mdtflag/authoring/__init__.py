"""mdtflag.authoring."""

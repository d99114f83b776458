"""mdtflag.fhir."""

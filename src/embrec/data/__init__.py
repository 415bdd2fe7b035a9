"""Reading, indexing, generating and splitting rating data."""

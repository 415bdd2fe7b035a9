"""embrec.training package."""

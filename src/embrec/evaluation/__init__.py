"""embrec.evaluation package."""

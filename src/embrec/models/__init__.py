"""embrec.models package."""

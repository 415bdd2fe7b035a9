"""embrec.serving package."""

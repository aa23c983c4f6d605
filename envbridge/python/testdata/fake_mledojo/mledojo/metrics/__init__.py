"""STAND-IN for tests, not MLE-Dojo."""

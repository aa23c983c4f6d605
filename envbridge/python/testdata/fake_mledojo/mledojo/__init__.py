"""STAND-IN for tests, not MLE-Dojo.

Mirrors the import paths of MLE-Dojo's ``mledojo`` package that
smtrain's mledojo_adapter.py uses, with the same signatures, so that the
adapter can be tested without MLE-Dojo installed.
"""

STAND_IN = True

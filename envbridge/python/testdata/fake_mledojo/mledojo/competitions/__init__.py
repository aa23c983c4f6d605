"""STAND-IN for tests, not MLE-Dojo: get_metric(name) -> metric class."""

from mledojo.metrics.base import CompetitionMetrics


class StandInAccuracy(CompetitionMetrics):
    """STAND-IN for tests, not MLE-Dojo: a metric that is never computed."""

    def __init__(self):
        super().__init__(higher_is_better=True)


def get_metric(name):
    if name.startswith("missing-metric"):
        raise ValueError("no metric registered for %r" % name)
    return StandInAccuracy


def get_prepare(name):
    return None

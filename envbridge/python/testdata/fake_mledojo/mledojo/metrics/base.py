"""STAND-IN for tests, not MLE-Dojo: CompetitionMetrics base class."""


class CompetitionMetrics:
    """STAND-IN for tests, not MLE-Dojo."""

    def __init__(self, higher_is_better=True):
        self.higher_is_better = higher_is_better

    def evaluate(self, y_true, y_pred):
        raise NotImplementedError

    def validate_submission(self, submission, ground_truth):
        raise NotImplementedError

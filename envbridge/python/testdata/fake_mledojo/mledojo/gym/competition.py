"""STAND-IN for tests, not MLE-Dojo: CompInfo, Competition, CompetitionRegistry
with MLE-Dojo's signatures and its data-layout check."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional


@dataclass
class CompInfo:
    category: str = "Tabular"
    level: str = "intermediate"
    output_type: str = "submission.csv"
    higher_is_better: bool = True
    tldr: Optional[str] = None
    tags: List[str] = field(default_factory=list)


class Competition:
    REQUIRED_PATHS = ["", "public", "private", "public/description.txt",
                      "public/sample_submission.csv", "private/test_answer.csv"]

    def __init__(self, name, data_dir, comp_info=None, metric_class=None):
        self.name = name
        self.data_dir = str(data_dir)
        self.info = comp_info or CompInfo()
        if metric_class is None:
            raise ValueError("Metric class not provided")
        self.metric_class = metric_class
        for rel in self.REQUIRED_PATHS:
            p = Path(self.data_dir) / rel if rel else Path(self.data_dir)
            if not p.exists():
                raise FileNotFoundError("Required path does not exist: %s" % p)

    def get_data_path(self):
        return Path(self.data_dir)

    def create_metrics(self):
        return self.metric_class()


class CompetitionRegistry:
    def __init__(self, name=None, data_dir=None, comp_info=None, metric_class=None, competitions=None):
        self._competitions = dict(competitions or {})
        if name is not None:
            self.register(name=name, data_dir=data_dir, comp_info=comp_info, metric_class=metric_class)

    def register(self, name, data_dir, comp_info=None, metric_class=None):
        if name in self._competitions:
            raise ValueError("Competition %r already registered" % name)
        c = Competition(name=name, data_dir=data_dir, comp_info=comp_info, metric_class=metric_class)
        self._competitions[name] = c
        return c

    def get(self, name):
        if name not in self._competitions:
            raise KeyError("Competition %r not found" % name)
        return self._competitions[name]

    def list_competitions(self):
        return list(self._competitions)

"""Errors that are the user's to fix: the CLI prints their message, without a traceback."""

from __future__ import annotations


def _user_errors() -> tuple[type[BaseException], ...]:
    from kardiabench.annotation.study import AnnotateError
    from kardiabench.data.load import DataError
    from kardiabench.extras import MissingExtra
    from kardiabench.models import SpecError
    from kardiabench.models.base import FatalModelError, ModelError
    from kardiabench.models.openai_batch import BatchTimeout
    from kardiabench.runner import BudgetExceeded
    from kardiabench.runs import RunDirError
    from kardiabench.scoring.agreement import HumanLabelError
    from kardiabench.scoring.compare import ComparisonRefused
    from kardiabench.scoring.families import FamiliesError
    from kardiabench.scoring.rubric import RubricError
    from kardiabench.tasks import TaskError
    from kardiabench.train.config import TrainConfigError

    return (
        DataError,
        TaskError,
        RunDirError,
        SpecError,
        FatalModelError,
        ModelError,
        FileNotFoundError,
        ComparisonRefused,
        HumanLabelError,
        RubricError,
        BudgetExceeded,
        BatchTimeout,
        FamiliesError,
        TrainConfigError,
        MissingExtra,
        AnnotateError,
    )


USER_ERRORS = _user_errors()

"""Dialogues in, typed records out: load, validate, split, expand."""

from kardiabench.data.expand import expand, expand_dialogue
from kardiabench.data.load import DataError, LoadResult, load_dialogues
from kardiabench.data.split import persona_split
from kardiabench.data.validate import Problem, validate_record

__all__ = [
    "DataError",
    "LoadResult",
    "Problem",
    "expand",
    "expand_dialogue",
    "load_dialogues",
    "persona_split",
    "validate_record",
]

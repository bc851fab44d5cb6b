"""Task definitions: YAML files in tasks/ (or a folder given with --tasks-dir) read into `Task`.

A task says which data to use, how earlier turns appear in the history, how the prompt is built
from an `Item`, the generation defaults, and which metrics to compute. It knows nothing about
transports: `Task.messages(item)` gives chat messages, and a model adapter takes it from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kardiabench.emotions import EMOTIONS
from kardiabench.models.base import SamplingParams
from kardiabench.records import Item

BUILTIN_TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
if not BUILTIN_TASKS_DIR.is_dir():  # installed without the repo: the copy shipped in the package
    BUILTIN_TASKS_DIR = Path(__file__).parent / "resources" / "tasks"

Metric = Literal["emotion", "format", "rubric"]


class TaskError(Exception):
    """A task file is malformed or missing; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    source: str = "hub"
    split: str = "test"


class FewShot(_Strict):
    user: str
    assistant: str
    # the training item a drawn example came from (kardiabench/fewshot.py)
    item_id: str | None = None


class PromptConfig(_Strict):
    # the dataset's own system prompt (persona + situation)
    system: Literal["dataset", "none"] = "dataset"
    format_instruction: str | None = None  # appended to the system prompt; {labels} → the 32 labels
    few_shot: list[FewShot] = Field(default_factory=list)
    # example exchanges drawn from the train split (kardiabench/fewshot.py)
    num_fewshot: int = Field(0, ge=0)
    fewshot_seed: int = 0  # which training dialogues they come from


class GenerationConfig(_Strict):
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, gt=0)
    seed: int | None = 0

    def params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens, self.seed)


class Task(_Strict):
    name: str
    description: str
    version: str = "1"
    data: DataConfig = Field(default_factory=DataConfig)
    history: Literal["full", "response"] = "full"
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    metrics: list[Metric] = Field(default_factory=lambda: ["emotion", "format", "rubric"])
    path: str | None = Field(default=None, exclude=True)

    def system_prompt(self, item: Item) -> str:
        parts = (
            [item.system_prompt] if self.prompt.system == "dataset" and item.system_prompt else []
        )
        if self.prompt.format_instruction:
            parts.append(
                self.prompt.format_instruction.replace("{labels}", ", ".join(EMOTIONS)).strip()
            )
        return "\n\n".join(parts)

    def messages(self, item: Item) -> list[dict[str, str]]:
        """Chat messages for one item: system prompt, few-shot turns, dialogue so far, user turn."""
        msgs = item.chat_messages(self.system_prompt(item))
        if self.prompt.few_shot:
            at = 1 if msgs and msgs[0]["role"] == "system" else 0
            shots = [
                m
                for s in self.prompt.few_shot
                for m in (
                    {"role": "user", "content": s.user},
                    {"role": "assistant", "content": s.assistant},
                )
            ]
            msgs[at:at] = shots
        return msgs

    @property
    def uses_judge(self) -> bool:
        return "rubric" in self.metrics


def load_task_file(path: Path) -> Task:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise TaskError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: expected a mapping at the top level")
    try:
        task = Task.model_validate(raw)
    except ValidationError as e:
        lines = [
            f"{path}: field '{'.'.join(str(x) for x in err['loc'])}': {err['msg']}"
            for err in e.errors()
        ]
        raise TaskError("\n".join(lines)) from None
    task.path = str(path)
    return task


def task_files(extra_dirs: list[str] | None = None) -> dict[str, Path]:
    """Task name (file stem) → file; later folders override earlier ones (user tasks win)."""
    found: dict[str, Path] = {}
    for folder in [BUILTIN_TASKS_DIR, *(Path(d) for d in extra_dirs or [])]:
        if not folder.is_dir():
            raise TaskError(f"{folder}: tasks folder not found")
        for p in sorted(folder.glob("*.y*ml")):
            found[p.stem] = p
    return found


def load_task(name_or_path: str, extra_dirs: list[str] | None = None) -> Task:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_task_file(path)
    files = task_files(extra_dirs)
    if name_or_path not in files:
        raise TaskError(f"unknown task {name_or_path!r}; available: {', '.join(sorted(files))}")
    task = load_task_file(files[name_or_path])
    if task.name != name_or_path:
        raise TaskError(
            f"{files[name_or_path]}: field 'name' is {task.name!r} but the file is named {name_or_path!r}"
        )
    return task


def list_tasks(extra_dirs: list[str] | None = None) -> list[Task]:
    return [load_task_file(p) for p in task_files(extra_dirs).values()]

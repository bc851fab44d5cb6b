"""Load KardiaBench dialogues from the bundled sample, local files, or the gated Hub dataset.

`--data` accepts:
  sample                 the bundled synthetic sample (train / test)
  DIR                    a folder with {split}.jsonl / .json / .parquet (e.g. train.jsonl, test.jsonl)
  FILE                   one .jsonl / .json / .parquet file: a single split, evaluated whole
  hub | OWNER/NAME       the Hub dataset (default Jhcircle/KardiaBench, alias Jhcircle/KadiaBench),
                         read with HF_TOKEN; a local copy in the Hub cache is used when offline
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kardiabench.data.split import persona_split
from kardiabench.data.validate import Problem, validate_record
from kardiabench.jsonl import iter_jsonl_lines
from kardiabench.records import Dialogue, SourceRef

SAMPLE_DIR = Path(__file__).parent / "sample"
HUB_REPO = "Jhcircle/KardiaBench"
HUB_ALIASES = ("Jhcircle/KardiaBench", "Jhcircle/KadiaBench")
HUB_PAGE = "https://huggingface.co/datasets/Jhcircle/KardiaBench"
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
# owner/name as the Hub spells it: each part starts and ends with a letter or digit, so "./x" and
# "data/test.jsonl" (a missing local file) are paths, not repositories
_REPO_ID = re.compile(r"^\w(?:[\w.-]*\w)?/\w(?:[\w.-]*\w)?$")


FILE_PROBLEMS = ("empty", "unreadable")  # Problem kinds about a whole file, not one record


class DataError(Exception):
    """A data source cannot be used. The message says what to do; no traceback is needed."""


@dataclass
class LoadResult:
    dialogues: list[Dialogue]
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    source: str = ""
    split: str | None = None
    records_read: int = 0

    @property
    def skipped(self) -> int:
        """Records left out for problems (not `records_read - len(dialogues)`: a derived split
        holds only part of the records it read)."""
        return len({p.source for p in self._record_problems()})

    def skipped_by_kind(self) -> Counter:
        """How many records were skipped, by the first problem that ruled each out."""
        first: dict[SourceRef, str] = {}
        for p in self._record_problems():
            first.setdefault(p.source, p.kind)
        return Counter(first.values())

    def _record_problems(self) -> list[Problem]:
        """Problems of records; an empty or unreadable file has none to skip."""
        return [p for p in self.problems if p.kind not in FILE_PROBLEMS]


# --------------------------------------------------------------------------- reading files


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line or row, parsed object). An unparseable JSONL line yields a Problem."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for lineno, row in iter_jsonl_lines(path):  # a bad line is one problem, and reading goes on
            if isinstance(row, json.JSONDecodeError):
                row = Problem(
                    SourceRef(str(path), lineno),
                    "<line>",
                    f"invalid JSON: {row.msg} at column {row.colno}",
                    "json",
                )
            elif isinstance(row, UnicodeDecodeError):
                row = Problem(
                    SourceRef(str(path), lineno),
                    "<line>",
                    f"not UTF-8 text (byte {row.start + 1} of the line)",
                    "json",
                )
            yield lineno, row
    elif suffix == ".json":
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            yield (
                e.lineno,
                Problem(SourceRef(str(path), e.lineno), "<file>", f"invalid JSON: {e.msg}", "json"),
            )
            return
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            yield line, Problem(SourceRef(str(path), line), "<file>", "not UTF-8 text", "json")
            return
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], list):
            data = data["data"]
        if not isinstance(data, list):
            yield (
                1,
                Problem(
                    SourceRef(str(path), 1), "<file>", "expected a JSON array of dialogues", "json"
                ),
            )
            return
        yield from enumerate(data, start=1)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowIOError
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        yield from enumerate(table.to_pylist(), start=1)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")


def read_file(path: Path) -> LoadResult:
    """Read and validate every record of one file; duplicates of earlier dialogues are problems."""
    result = LoadResult(dialogues=[], files=[str(path)])
    try:
        _read_records(path, result)
    except OSError as e:  # a symlink loop, a dangling link, no read permission
        result.problems.append(
            Problem(
                SourceRef(str(path), 1),
                "<file>",
                f"cannot be read: {e.strerror or e}",
                "unreadable",
            )
        )
        return result
    if result.records_read == 0:  # "OK: 0 records" would hide a wrong path or a failed download
        result.problems.append(
            Problem(SourceRef(str(path), 1), "<file>", "empty file: no records", "empty")
        )
    return result


def _read_records(path: Path, result: LoadResult) -> None:
    seen: dict[str, SourceRef] = {}
    for lineno, raw in read_rows(path):
        result.records_read += 1
        if isinstance(raw, Problem):
            result.problems.append(raw)
            continue
        ref = SourceRef(str(path), lineno)
        dialogue, problems = validate_record(raw, ref)
        if dialogue is not None and dialogue.dialogue_id in seen:
            problems.append(
                Problem(
                    ref,
                    "<record>",
                    f"duplicate dialogue (same content as {seen[dialogue.dialogue_id]})",
                    "duplicate",
                )
            )
            dialogue = None
        result.problems.extend(problems)
        if dialogue is not None:
            seen[dialogue.dialogue_id] = ref
            result.dialogues.append(dialogue)


# --------------------------------------------------------------------------- sources


def split_files(folder: Path) -> dict[str, Path]:
    """Map split name → file for the data files directly inside `folder`."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if (
            _is_data_file(p)
            and p.suffix.lower() in FILE_SUFFIXES
            and not p.name.startswith((".", "_"))
        ):
            found.setdefault(p.stem, p)
    order = {"train": 0, "validation": 1, "test": 2}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 3), kv[0])))


def _is_data_file(p: Path) -> bool:
    """A file, or a link that leads nowhere (a loop, a dangling link): read_file reports the latter
    as a problem instead of the split silently disappearing."""
    return p.is_file() or (p.is_symlink() and not p.exists())


def is_hub_source(data: str) -> bool:
    if data == "hub" or data.startswith("hf://"):
        return True
    looks_like_file = data.lower().endswith(FILE_SUFFIXES)
    return bool(_REPO_ID.match(data)) and not looks_like_file and not Path(data).exists()


def resolve_files(data: str, split: str | None) -> tuple[list[Path], str | None]:
    """The file(s) to read for `data` and `split`, and the split name they represent."""
    if data == "sample":
        return resolve_files(str(SAMPLE_DIR), split or "test")
    if is_hub_source(data):
        return [hub_file(data, split or "test")], split or "test"
    path = Path(data).expanduser()
    if not path.exists() and not path.is_symlink():
        raise DataError(
            f"{data}: no such file or folder (expected 'sample', a Hub id, a folder or a data file)"
        )
    if _is_data_file(path):
        return [path], None  # a single file is one split, evaluated whole
    files = split_files(path)
    if not files:
        raise DataError(f"{path}: no .jsonl/.json/.parquet files in this folder")
    if split is None:
        split = "test" if "test" in files else next(iter(files))
    if split not in files:
        raise DataError(f"{path}: no file for split {split!r}; found splits: {', '.join(files)}")
    return [files[split]], split


def load_dialogues(
    data: str,
    split: str | None = None,
    *,
    strict: bool = False,
    derive_split: float | None = None,
    split_seed: int = 0,
) -> LoadResult:
    """Load and validate one split of a source.

    Bad records are skipped and listed in `LoadResult.problems`; with strict=True any problem raises
    DataError instead. `derive_split=F` takes a single file (or the chosen split) and returns the
    requested part of a persona-disjoint split with test fraction F (see data/split.py).
    """
    if derive_split is not None:
        if not 0.0 < derive_split < 1.0:
            raise DataError(
                f"the derived test fraction must be between 0 and 1, got {derive_split}"
            )
        whole = load_dialogues(data, None if _is_single_file(data) else "train", strict=strict)
        parts = persona_split(whole.dialogues, derive_split, split_seed)
        want = split or "test"
        if want not in parts:
            raise DataError(f"derived splits are 'train' and 'test', not {want!r}")
        whole.dialogues = parts[want]
        whole.split = want
        return whole
    files, split_name = resolve_files(data, split)
    result = LoadResult(dialogues=[], source=data, split=split_name)
    for f in files:
        part = read_file(f)
        result.dialogues.extend(part.dialogues)
        result.problems.extend(part.problems)
        result.files.extend(part.files)
        result.records_read += part.records_read
    if strict and result.problems:
        shown = "\n".join(f"  {p}" for p in result.problems[:20])
        more = f"\n  … and {len(result.problems) - 20} more" if len(result.problems) > 20 else ""
        raise DataError(
            f"{len(result.problems)} problem(s) in {data} (strict mode):\n{shown}{more}"
        )
    return result


def files_sha256(files: list[str]) -> dict[str, str]:
    """File name → 16 hex of the SHA-256 of its bytes: which revision of local data a run read."""
    out = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[Path(f).name] = h.hexdigest()[:16]
    return out


def hub_revision(files: list[str]) -> str | None:
    """The Hub commit files were downloaded at: their snapshot folder in the Hub cache
    (`.../snapshots/<commit sha>/<file>`), as `hf_hub_download` resolves it."""
    for f in files:
        parts = Path(f).parts
        if "snapshots" in parts[:-2]:
            return parts[parts.index("snapshots") + 1]
    return None


def _is_single_file(data: str) -> bool:
    return data != "sample" and not is_hub_source(data) and Path(data).is_file()


# --------------------------------------------------------------------------- the Hub


def hub_file(data: str, split: str) -> Path:
    """Download (or find in the local Hub cache) the file of `split` from the gated dataset."""
    repo = HUB_REPO if data == "hub" else data.removeprefix("hf://datasets/").removeprefix("hf://")
    candidates = [repo] + [a for a in HUB_ALIASES if repo in HUB_ALIASES and a != repo]
    errors: list[str] = []
    for repo_id in candidates:
        try:
            return _hub_download(repo_id, split)
        except _NotFound as e:
            errors.append(str(e))
    raise DataError("\n".join(errors))  # one line per repository tried (the alias too)


class _NotFound(Exception):
    pass


def _hub_download(repo_id: str, split: str) -> Path:
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
    )

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    page = f"https://huggingface.co/datasets/{repo_id}"
    offline_hint = (
        f"The Hugging Face Hub cannot be reached (offline or HF_HUB_OFFLINE=1), and {repo_id} is not "
        "in the local Hub cache. Pass local files instead: --data DIR with train.jsonl / test.jsonl "
        "(downloaded on a machine with access), or --data sample for the bundled sample."
    )
    names = [f"{split}{suffix}" for suffix in FILE_SUFFIXES] + [f"data/{split}.jsonl"]
    network_errors = (LocalEntryNotFoundError, *hub_network_errors())
    try:
        try:
            # One request the client does not retry: an unreachable Hub fails in about a second
            # instead of after ~25 s of retries. The conventional file name usually exists.
            get_hf_file_metadata(hf_hub_url(repo_id, names[0], repo_type="dataset"), token=token)
        # the split's file is named differently: list the repository
        except RemoteEntryNotFoundError:
            files = HfApi().list_repo_files(repo_id, repo_type="dataset", token=token)
            names = [
                f for f in files if Path(f).stem == split and Path(f).suffix in FILE_SUFFIXES
            ] or [
                f
                for f in files
                if Path(f).name.startswith(split) and Path(f).suffix in FILE_SUFFIXES
            ]
            if not names:
                raise DataError(
                    f"{repo_id}: no file for split {split!r} in the dataset repository (files: {', '.join(files[:20])})"
                ) from None
        except network_errors:
            for name in names:  # offline: a copy in the local Hub cache still works
                try:
                    return Path(
                        hf_hub_download(
                            repo_id, name, repo_type="dataset", token=token, local_files_only=True
                        )
                    )
                except (LocalEntryNotFoundError, OSError, ValueError):
                    continue
            raise DataError(offline_hint) from None
        return Path(hf_hub_download(repo_id, names[0], repo_type="dataset", token=token))
    except GatedRepoError:
        if not token:
            raise DataError(
                f"{repo_id} is a gated dataset and no token was found. Request access at {page}, then set "
                "HF_TOKEN to a token of the approved account (or pass local files with --data DIR)."
            ) from None
        raise DataError(
            f"Access to {repo_id} is not granted for this HF_TOKEN: the access request is pending or was "
            f"not approved. Check its status at {page} (or pass local files with --data DIR)."
        ) from None
    except RepositoryNotFoundError:
        hint = " If it is gated or private, set HF_TOKEN." if not token else ""
        raise _NotFound(
            f"{repo_id}: no such dataset on the Hub, or it needs authentication.{hint}"
        ) from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            what = (
                "no token was found; set HF_TOKEN"
                if not token
                else "this HF_TOKEN is not authorised (invalid, or access not yet approved)"
            )
            raise DataError(
                f"{repo_id}: the Hub refused access ({status}): {what}. See {page}."
            ) from None
        raise DataError(
            f"{repo_id}: the Hub answered with an error ({status or e}). Try again, or pass local files with --data DIR."
        ) from None
    except network_errors:
        raise DataError(offline_hint) from None


def hub_network_errors() -> tuple[type[Exception], ...]:
    """What a Hub call raises when the Hub cannot be reached: offline mode (HF_HUB_OFFLINE), no
    connection, a timeout, a dropped connection. The dataset loader, `hf:` models and
    `leaderboard push` read them as "unreachable", in one line."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    return (OfflineModeIsEnabled, ConnectionError, TimeoutError, *_transport_errors())


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's network errors, which are not OSErrors (httpx2 in huggingface_hub 2.x, httpx in 1.x)."""
    found: list[type[Exception]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def resolve_split_names(data: str) -> list[str | None]:
    """The splits a source offers, for commands that look at all of them (None: one whole file)."""
    if data == "sample":
        return list(split_files(SAMPLE_DIR))
    if is_hub_source(data):
        return ["train", "test"]
    path = Path(data).expanduser()
    if path.is_dir():
        return list(split_files(path)) or [None]
    return [None]

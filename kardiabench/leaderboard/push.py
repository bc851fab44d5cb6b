"""`kardiabench leaderboard push --repo ID`: a built leaderboard as a Hugging Face dataset repo.

Uploaded (one commit, through `huggingface_hub`): a dataset card (README.md: the Markdown table, the
groups, where the numbers come from) and what `publish.stage` allows: the tables, build.json, the
plots, the site's page, the entries (results.json's numbers and the run's provenance, projected
through an allow-list: no few-shot example text, no local paths) and their items (ids, labels and
scores: no text), and the pairwise results of `leaderboard add-pairwise` (pairwise.md, pairwise/:
their numbers, projected likewise; no response text). The runs' reports are uploaded only from a build made with `--redact` by the
current redaction (build.json `redaction`), and only those that build wrote. The token is HF_TOKEN
(or a `huggingface-cli login`); HF_ENDPOINT points to another Hub. A failure (no token, a refused
token, no write access, the Hub out of reach) is one line.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from kardiabench.data.load import hub_network_errors
from kardiabench.leaderboard.build import SITE, read_build_info
from kardiabench.leaderboard.entries import LeaderboardError
from kardiabench.leaderboard.publish import stage

CARD = """---
pretty_name: KardiaBench leaderboard
tags: [kardiabench, leaderboard, evaluation, empathetic-dialogue]
configs:
- config_name: default
  data_files: leaderboard.csv
---
# KardiaBench leaderboard

Results of models on KardiaBench, made with the `kardiabench` harness (built {built}). Rows are
ranked only within a comparability group (same data and item set, judge and rubric version,
history mode and task prompt); a tier holds models the paired test does not separate. The paper's
reported numbers are reference rows, not runs made here.

{table}
Files: `leaderboard.csv|md|tex` (the tables), `entries/*.json` (each run's results and
provenance), `items/*.jsonl` (per-item labels and scores, no dialogue text){pairwise}, `plots/`,
`site/index.html`{reports}. The KardiaBench data itself (CC-BY-NC-ND-4.0, gated) is not included:
no dialogue, persona or few-shot example text, and none of the data's passages that a model or
judge repeated.
"""

PAIRWISE_FILES = (
    ", `pairwise.md` and `pairwise/*.json` (pairwise preference between runs: Bradley–Terry scores "
    "and win rates, judged pairwise; not comparable with the absolute scores)"
)

log = logging.getLogger("kardiabench")


def push(folder: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload `folder` (built) to the dataset repo `repo_id`; returns the repo's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from kardiabench.report import REDACTION_VERSION

    folder = Path(folder)
    info = read_build_info(folder)
    redacted = info.get("redacted") and info.get("redaction") == REDACTION_VERSION
    reports = (
        [f for f in info.get("files", []) if f.startswith(f"{SITE}/reports/")] if redacted else []
    )
    with tempfile.TemporaryDirectory(prefix="kardiabench-push-") as tmp:
        staged = Path(tmp)
        stage(folder, staged, reports=reports)
        listed = ", `site/reports/` (redacted reports)" if reports else ""
        table = (folder / "leaderboard.md").read_text(encoding="utf-8")
        (staged / "README.md").write_text(
            CARD.format(
                built=info["built"],
                table=table,
                reports=listed,
                pairwise=PAIRWISE_FILES if (staged / "pairwise.md").is_file() else "",
            ),
            encoding="utf-8",
        )
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
        try:
            url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(
                folder_path=staged,
                repo_id=repo_id,
                repo_type="dataset",
                commit_message=f"kardiabench leaderboard ({len(info['entries'])} runs)",
            )
        except (*hub_network_errors(), HfHubHTTPError, OSError) as e:  # OSError: no token
            raise push_error(repo_id, e) from None
    if not redacted:
        why = (
            "an older kardiabench redacted them, keeping the data passages a model repeated"
            if info.get("redacted")
            else "they hold dialogue text"
        )
        log.info(
            f"note: the runs' reports were not uploaded ({why}); build with --redact to include them"
        )
    return str(url)


def push_error(repo_id: str, e: BaseException) -> LeaderboardError:
    """One line for a push the Hub did not take: what went wrong and what to do about it."""
    said = next(iter(str(e).strip().splitlines()), "") or type(e).__name__
    if isinstance(e, hub_network_errors()):
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        why = (
            "HF_HUB_OFFLINE is set"
            if "offline mode" in said.lower()
            else f"{type(e).__name__}: {said}"
        )
        return LeaderboardError(
            f"push to {repo_id}: the Hub at {endpoint} cannot be reached ({why}); nothing was uploaded"
        )
    status = getattr(getattr(e, "response", None), "status_code", None)
    hint = {
        401: "the token was refused: set HF_TOKEN to a valid token with write access (or `huggingface-cli login`)",
        403: "this token may not write there: use a write token of that user or organisation",
        404: "no such repo, or this token cannot see it",
    }.get(status)
    return LeaderboardError(f"push to {repo_id}: {said}" + (f" ({hint})" if hint else ""))

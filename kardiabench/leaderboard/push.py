"""`kardiabench leaderboard push --repo ID`: a built leaderboard as a Hugging Face dataset repo.

Uploaded (one commit, through `huggingface_hub`): a dataset card (README.md: the Markdown table, the
groups, where the numbers come from), the tables, build.json, the entries (each run's results.json
and provenance), their items (ids, labels and scores: no dialogue text), the plots and the site's
page. The runs' reports carry dialogue text unless the leaderboard was built with `--redact`, so
they are uploaded only then. The token is HF_TOKEN (or a `huggingface-cli login`); HF_ENDPOINT
points to another Hub.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from kardiabench.leaderboard.build import SITE, read_build_info
from kardiabench.leaderboard.entries import ENTRIES, ITEMS_DIR, LeaderboardError

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
Files: `leaderboard.csv|md|tex` (the tables), `entries/*.json` (each run's results.json and
provenance), `items/*.jsonl` (per-item labels and scores, no dialogue text), `plots/`,
`site/index.html`{reports}. The KardiaBench data itself (CC-BY-NC-ND-4.0, gated) is not included.
"""

log = logging.getLogger("kardiabench")


def push(folder: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload `folder` (built) to the dataset repo `repo_id`; returns the repo's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    info = read_build_info(folder)
    with tempfile.TemporaryDirectory(prefix="kardiabench-push-") as tmp:
        stage = Path(tmp)
        _stage(folder, stage, with_reports=info["redacted"])
        if not info["redacted"]:
            log.info("note: the runs' reports hold dialogue text and are not uploaded; build with --redact to include them")
        reports = ", `site/reports/` (redacted reports)" if info["redacted"] else ""
        table = (folder / "leaderboard.md").read_text(encoding="utf-8")
        (stage / "README.md").write_text(CARD.format(built=info["built"], table=table, reports=reports), encoding="utf-8")
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
        try:
            url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=stage, repo_id=repo_id, repo_type="dataset",
                              commit_message=f"kardiabench leaderboard ({len(info['entries'])} runs)")  # fmt: skip
        except (HfHubHTTPError, OSError) as e:  # OSError: no token, offline mode, no connection
            raise LeaderboardError(f"push to {repo_id}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return str(url)


def _stage(folder: Path, stage: Path, *, with_reports: bool) -> None:
    """Copy what is uploaded into `stage` (same layout as the leaderboard folder)."""
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.tex", "build.json", "reported.yaml"):
        if (folder / name).is_file():
            shutil.copy2(folder / name, stage / name)
    for sub in (ENTRIES, ITEMS_DIR, "plots"):
        if (folder / sub).is_dir():
            shutil.copytree(folder / sub, stage / sub)
    (stage / SITE).mkdir()
    shutil.copy2(folder / SITE / "index.html", stage / SITE / "index.html")
    if with_reports and (folder / SITE / "reports").is_dir():
        shutil.copytree(folder / SITE / "reports", stage / SITE / "reports")

"""The leaderboard: run folders recorded as entries, grouped by comparability, ranked in tiers,
rendered as tables, plots and a static page (docs/leaderboard.md).

  entries.py   record a run folder into FOLDER/entries/ (and its items into FOLDER/items/)
  groups.py    which entries may be ranked together, and why
  tiers.py     ranks that the paired test can defend
  reported.py  the paper's reported numbers (leaderboard/reported.yaml) and the name mapping
  tables.py    one DataFrame → CSV, Markdown, LaTeX
  plots.py     radar, bars with CIs, per-emotion heatmap, confusion matrices (matplotlib, Agg)
  site.py      the one-page HTML site
  build.py     all of the above into FOLDER
  push.py      upload a built leaderboard to a Hugging Face dataset repo
  cli_commands.py  the `kardiabench leaderboard` subcommands
"""

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Results
#
# Every results record committed under `results/<experiment>/<profile>/seed<k>.json`, gathered into
# one table beside the paper's numbers. Each record is written by `python -m wcbook run ...` and says
# how it was made; nothing here is typed in. Rows are grouped by experiment, variant and profile, with
# the mean over seeds and the standard deviation of the mean (as the paper reports it).
#
# Only `paper`-profile rows are comparable with the paper; the `smoke*` rows are small CPU runs
# that check the machinery, and the `midscale` rows CPU runs at 14 x 14 on the whole training set,
# long enough to compare the ablations and variants with each other but not with the paper (each
# profile is described in `wcbook.experiments.PROFILES`). Where our
# data or encoder differ from the paper's, the provenance list below says so next to the record
# (`caveat`).

# %%
from pathlib import Path

from wcbook.results import format_table, load_records, summarise

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
records = load_records(ROOT / "results")
print(format_table(summarise(records)))

# %% [markdown]
# ## Provenance of every record

# %%
for r in sorted(records, key=lambda r: (r["experiment"], r["variant"] or "", r["profile"], r["seed"])):
    name = r["experiment"] + (f"+{r['variant']}" if r["variant"] else "")
    print(
        f"{name:24s} {r['profile']:14s} seed {r['seed']}  {r['device']} ({r['device_type']}), "
        f"commit {r['commit'][:10]}{' (dirty)' if r['dirty'] else ''}, {r['started_utc']}, "
        f"{r['wall_time_s']:.0f} s, {r['epochs']} epochs, "
        # Wilson-Cowan records from before the engine was wired in have no field: autograd.
        f"engine {r.get('engine', 'autograd') if 'gamma' in r['metrics'] else '-'}"
        + (f"\n{'':24s} caveat: {r['caveat']}" if r.get("caveat") else "")
    )

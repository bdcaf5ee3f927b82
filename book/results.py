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
# one table beside the paper's numbers. Each is written by `python -m wcbook run ... --publish` and says
# how it was made; nothing here is typed in. Rows are grouped by experiment, variant and profile, with
# the mean over seeds and the standard deviation of the mean (as the paper reports it).
#
# Only `paper`-profile rows are comparable with the paper; the `smoke*` rows are small CPU runs
# that check the machinery, and the `midscale` rows CPU runs at 14 x 14 on the whole training set,
# long enough to compare the ablations and variants with each other but not with the paper; the
# `midscale-encoded` rows are the CNN softmax twins at 28 x 28 on the whole training set with a cut
# schedule (1 + 5 epochs), trained for the robustness appendix (each profile is described in
# `wcbook.experiments.PROFILES`). Where our
# data or encoder differ from the paper's, the provenance list below says so next to the record
# (`caveat`).

# %%
from pathlib import Path

from IPython.display import display

from wcbook.results import load_records, summarise, summary_frame
from wcbook.tables import frame, styled

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
records = load_records(ROOT / "results")
display(styled(summary_frame(summarise(records)), "results-summary",
               numeric=["seeds", "ours", "paper", "gap"],
               caption="Every record: mean ± SEM over seeds per run and profile"))

# %% [markdown]
# ## Provenance of every record
#
# Who made each record, where and when: the device, the commit (marked when the working tree had
# uncommitted changes), the start time, the wall time, the epochs, and for the Wilson-Cowan runs
# the integrator that trained them (records from before the engine existed say nothing: autograd).

# %%
def provenance(r: dict) -> tuple:
    """One record's provenance as a table row."""
    engine = r.get("engine", "autograd") if "gamma" in r["metrics"] else "-"
    return (
        r["experiment"] + (f"+{r['variant']}" if r["variant"] else ""),
        r["profile"],
        r["seed"],
        f"{r['device']} ({r['device_type']})",
        r["commit"][:10] + (" (dirty)" if r["dirty"] else ""),
        r["started_utc"],
        f"{r['wall_time_s']:.0f}",
        r["epochs"],
        engine,
        r.get("caveat") or "",
    )


ordered = sorted(records, key=lambda r: (r["experiment"], r["variant"] or "", r["profile"],
                                         r["seed"]))
columns = ("run", "profile", "seed", "device", "commit", "started (UTC)", "wall s", "epochs",
           "engine", "caveat")
display(styled(frame(map(provenance, ordered), columns), "results-provenance",
               numeric=["seed", "wall s", "epochs"], widths={"caveat": "22%"}))

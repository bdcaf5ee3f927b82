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
# # Scorecard: the paper's numbers and ours
#
# Every number of the paper's Tables 1-7 and of its Appendix E, and the claim of its Fig. 6,
# beside what this reproduction measured at the paper's scale. The paper's numbers are held once, in the `reference` of each
# experiment of the registry (`wcbook.experiments`); ours are read from the committed records
# `results/<experiment>/paper/seed<k>.json`, each written by the run that produced it. Nothing on
# this page is typed in: `wcbook.scorecard` builds every row.
#
# **How to read a row.** *paper* is the paper's value, with its standard error where it gives one
# (the mean of five runs); *ours* is the mean over our seeds (± its standard error when there are
# several), *n* the number of seeds. *gap (SE)* is ours minus the paper's, in units of the combined
# standard error of the two. Where one side has no standard error of its own (one seed of ours,
# a single run or a best run of the paper's), it borrows the spread of one run of the paper's
# five-run row of the same model and data set. Timings have no gap: they were measured on other
# hardware. They are GPU times where a run of ours trained on a GPU (a run resumed on the CPU
# counts with its GPU session), and CPU times only where none did; *n* counts the runs timed.
#
# **Status.** *reproduced*: the gap is within the tolerance printed below. *explained*: outside it,
# with a known cause, stated in *why* (our data or encoder differ from the paper's, the authors'
# code does something other than the text, other hardware). *off*: outside it, with no known cause.
# *missing*: no paper-scale run of ours yet; *why* names the smaller runs that exist. Each status
# links to the chapter that discusses the row.

# %%
from pathlib import Path

from IPython.display import display

from wcbook.results import load_records
from wcbook.scorecard import (
    PAPER_RUNS,
    TABLE_TITLES,
    TOLERANCE,
    score_frame,
    scorecard,
    status_counts,
)
from wcbook.tables import styled

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
scores = scorecard(load_records(ROOT / "results"), load_records(ROOT / "certificates"))
print(f"reproduced: |gap| <= {TOLERANCE:g} combined standard errors; the paper's means are over "
      f"{PAPER_RUNS} runs")
print(f"{len(scores)} numbers of the paper:",
      ", ".join(f"{count} {status}" for status, count in status_counts(scores).items()))

# %% [markdown]
# ## From scratch (Tables 1 and 2)
#
# The Wilson-Cowan network trained on raw pixels, and the MLP baseline it is compared with
# ({doc}`04_training`).

# %%
def show(table: str) -> None:
    """One of the paper's tables as an HTML table."""
    rows = [row for row in scores if row.entry.table == table]
    name = "scorecard-" + table.lower().replace(" ", "-").replace(".", "")
    display(styled(score_frame(rows), name, caption=TABLE_TITLES[table],
                   numeric=["paper", "ours", "n", "gap (SE)"], widths={"why": "32%"}))


show("Table 1")
show("Table 2")

# %% [markdown]
# ## An encoder in front (Tables 3 and 4)
#
# A CNN, VGG16 or a pretrained encoder feeds the initial state of the dynamics
# ({doc}`07_encoders`, {doc}`08_transfer`).

# %%
show("Table 3")
show("Table 4")

# %% [markdown]
# ## Text (Table 5)
#
# Three arms with the same encoder and budget: the dynamics running, the distance head that the
# authors' script in fact trains, and the encoder alone ({doc}`06_text`).

# %%
show("Table 5")

# %% [markdown]
# ## Image size (Tables 6 and 7) and ablations (Appendix E)
#
# Single runs in the paper ({doc}`A1_scaling`, {doc}`A2_ablations`).

# %%
show("Table 6")
show("Table 7")
show("App. E")

# %% [markdown]
# ## Stability of the trained model (Fig. 6)
#
# The paper's Fig. 6 shows every trained eigenvalue of its MNIST model inside the stable region.
# Training records now carry the largest $\Gamma\lambda$ against the per-mode bound and a short
# certificate of the full Jacobian at the end ({doc}`A3_certificate`). A record made before that
# report existed is answered by the stability certificate of the same run, where one was computed
# from its weights (`certificates/<run>/<profile>/seed<k>.json`, the same two tests); the row is
# judged on the largest profile that has either, which it names.

# %%
show("Fig. 6")

# %% [markdown]
# The {doc}`conclusions` chapter says what these rows add up to; the {doc}`results` page lists
# every record, of every profile, with its provenance.

"""The book's HTML tables: one style, a fixed id, coloured statuses, rows shared with the text."""

from pathlib import Path

from wcbook import appendix
from wcbook.results import SummaryRow, summary_frame
from wcbook.tables import STATUS_COLOURS, frame, styled

ROOT = Path(__file__).resolve().parents[1]


def test_styled_is_deterministic_and_colours_each_status():
    table = frame([(s, 1) for s in STATUS_COLOURS], ("status", "n"))
    html = styled(table, "demo", caption="a caption", numeric=["n"]).to_html()
    assert html == styled(table, "demo", caption="a caption", numeric=["n"]).to_html()
    assert 'id="T_demo"' in html and "a caption" in html and "<th" in html
    for colour in STATUS_COLOURS.values():
        assert colour in html


def test_summary_frame_puts_the_paper_beside_ours():
    row = SummaryRow("mnist-scratch", "text", "paper", "test_accuracy", 2, 0.98, 0.001, 0.9813,
                     0.0003)
    table = summary_frame([row])
    assert list(table.columns) == ["run", "profile", "metric", "seeds", "ours", "paper", "gap"]
    assert table.iloc[0].tolist() == ["mnist-scratch+text", "paper", "test_accuracy", 2,
                                      "0.9800 ± 0.0010", "0.9813 ± 0.0003", "-0.0013"]


def test_ablation_rows_mark_a_missing_record(tmp_path):
    rows = appendix.ablation_rows("smoke", tmp_path)
    assert [r[0] for r in rows] == ["mnist-scratch", *appendix.ABLATION_IDS]
    assert all(r[1] == "no smoke record" and len(r) == len(appendix.ABLATION_COLUMNS)
               for r in rows)


def test_committed_variant_rows_have_one_row_per_variant():
    spread, rows = appendix.variant_rows("midscale", ROOT / "results")
    assert spread.startswith("spread of the default configuration")
    assert len(rows) == 1 + len(appendix.VARIANT_RUNS)
    assert all(len(r) == len(appendix.VARIANT_COLUMNS) for r in rows)

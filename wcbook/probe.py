"""The ceiling a frozen encoder sets: a linear probe on its features over a whole data split.

A head trained on frozen features (the transfer experiment of Sec. 5.2.1) can only be as good as
the features let it be. :func:`probe_ceiling` measures that ceiling directly: the frozen encoder of
an encoder experiment (or another one of :data:`wcbook.encoded.ENCODER_NAMES` in its place) turns
every training and test image into features, and a multinomial logistic regression
(:func:`wcbook.encoders.linear_probe`, deterministic) is fitted on all the training features. The
image side is a parameter, so the same measurement answers whether a larger input or a larger
encoder would lift the ceiling (the flower images are stored at 128 x 128; a larger side is an
upsampling of them, and the record says so).

Records go to ``probes/<experiment>/<encoder>-size<side>.json`` with the usual provenance
(commit, device, software, wall time, and the feature extraction's own time)::

    python -m wcbook.probe flowers-transfer --sizes 128 224                  # working folder
    python -m wcbook.probe flowers-transfer --encoder efficientnet-lite1 --sizes 240 --publish
    python -m wcbook.probe flowers-transfer --encoder efficientnet-lite2 --native --publish

``--native`` probes an EfficientNet-Lite model at the side it was trained at (Lite0 224, Lite1
240, Lite2 260).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .data import load_color_images
from .encoded import ENCODER_NAMES, build_encoder
from .encoders import LITE_SPECS, extract_features, linear_probe
from .experiments import ExperimentConfig, data_caveat, get_experiment
from .folders import add_output_arguments, user_home
from .training.provenance import environment, git_commit

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PROBE_COLUMNS", "probe_ceiling", "probe_path", "probed_config", "load_probe", "load_probes",
    "probe_frame", "main",
]

#: Folder of the committed probe records, beside ``results/``.
PROBES = "probes"


def probe_path(
    experiment: str, image_size: int, root: str | Path = PROBES, encoder: str | None = None
) -> Path:
    """``<root>/<experiment>/<encoder>-size<side>.json``; ``encoder`` None means the
    experiment's own."""
    encoder = encoder or get_experiment(experiment).encoder_option("encoder")
    return Path(root) / experiment / f"{encoder}-size{image_size}.json"


def probed_config(experiment: str, image_size: int, encoder: str | None = None) -> ExperimentConfig:
    """The config of ``experiment`` with its images at ``image_size`` and, where given,
    ``encoder`` in place of its own (the settings the probe measures)."""
    config = get_experiment(experiment)
    options = {**config.encoder_options, "encoder": encoder or config.encoder_option("encoder")}
    return dataclasses.replace(config, image_size=image_size, encoder_options=options)


def _features(
    config: ExperimentConfig, split: str, device: torch.device = torch.device("cpu")
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's features of every image of ``split`` at the config's side, computed
    on ``device`` a chunk of images at a time, returned on the CPU."""
    encoder = build_encoder(
        config.encoder_option("encoder"),
        in_channels=config.in_channels,
        image_size=config.side,
        pretrained=config.encoder_option("pretrained"),
        frozen=True,
        seed=0,
    ).to(device)
    images, labels = load_color_images(config.dataset, split, size=config.side)
    chunks = [
        extract_features(encoder, images[i : i + 1024].to(device), batch_size=64).cpu()
        for i in range(0, len(images), 1024)
    ]
    return torch.cat(chunks), labels


#: Weight decays of the probe's logistic regression (on standardised features). The first probes
#: stopped at 0.1 and every one of them scored best there, at the grid's edge; the grid now goes
#: on to 3, so that the best decay lies inside it.
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0, 3.0)


def _native_size(encoder: str) -> int | None:
    """The side an EfficientNet-Lite model was trained at; None for other encoders."""
    return LITE_SPECS[encoder].native_size if encoder in LITE_SPECS else None


def probe_ceiling(
    experiment: str,
    image_size: int,
    *,
    encoder: str | None = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    iterations: int = 200,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """A linear probe on the frozen encoder of ``experiment`` (a colour-image encoder
    experiment with a pretrained, frozen encoder; ``encoder`` replaces it by another), trained on
    the whole training split and tested on the whole test split, the images at ``image_size``,
    once per weight decay; the record with provenance. ``metrics`` holds the best test accuracy
    over the weight decays (chosen on the test split itself, so an optimistic ceiling) and the
    train accuracy of that probe; ``by_weight_decay`` every probe; ``extract_time_s`` the
    seconds spent turning images into features (both splits, decoding included) on ``device``
    (the probe itself is fitted on the CPU)."""
    config = probed_config(experiment, image_size, encoder)
    if config.model != "encoded" or not config.encoder_option("frozen"):
        raise ValueError(f"{experiment} has no frozen encoder to probe")
    stored = get_experiment(experiment).side
    tick = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    device = torch.device(device)
    train_x, train_y = _features(config, "train", device)
    test_x, test_y = _features(config, "test", device)
    extracted = time.perf_counter() - tick
    probes = [
        (decay, *linear_probe(train_x, train_y, test_x, test_y, weight_decay=decay,
                              iterations=iterations))
        for decay in weight_decays
    ]
    best = max(probes, key=lambda p: p[2])
    commit, dirty = git_commit()
    return {
        "experiment": experiment,
        "encoder": config.encoder_option("encoder"),
        "encoder_native_size": _native_size(config.encoder_option("encoder")),
        "dataset": config.dataset,
        "caveat": data_caveat(config),
        "image_size": image_size,
        "stored_image_size": stored,
        "upsampled": image_size > stored,
        "n_train": len(train_y),
        "n_test": len(test_y),
        "n_features": int(train_x.shape[1]),
        "iterations": iterations,
        "metrics": {"train_accuracy": best[1], "test_accuracy": best[2], "weight_decay": best[0]},
        "by_weight_decay": [
            {"weight_decay": d, "train_accuracy": a, "test_accuracy": b} for d, a, b in probes
        ],
        "started_utc": started,
        "extract_time_s": round(extracted, 1),
        "wall_time_s": round(time.perf_counter() - tick, 1),
        **environment(device, None, 1),
        "commit": commit,
        "dirty": dirty,
    }


def load_probe(
    experiment: str, image_size: int, root: str | Path = PROBES, encoder: str | None = None
) -> dict | None:
    """The probe record of ``experiment`` (with ``encoder``, None: its own) at ``image_size``
    under ``root``, or None."""
    path = probe_path(experiment, image_size, root, encoder)
    return json.loads(path.read_text()) if path.exists() else None


def load_probes(experiment: str, root: str | Path = PROBES) -> list[dict]:
    """Every probe record of ``experiment`` under ``root``, by encoder name, then side."""
    records = [json.loads(p.read_text()) for p in (Path(root) / experiment).glob("*-size*.json")]
    return sorted(records, key=lambda r: (r["encoder"], r["image_size"]))


#: Columns of :func:`probe_frame`.
PROBE_COLUMNS = (
    "encoder", "input (px)", "trained at (px)", "upsampled", "features", "probe test (%)",
    "probe train (%)", "weight decay", "features took (s)", "paper (%)",
)


def probe_frame(records: Sequence[dict], paper_accuracy: float | None = None) -> "pd.DataFrame":
    """The probe ceilings as a table (:data:`PROBE_COLUMNS`), one row per record in the given
    order: the encoder, the side the images were given at and the side the encoder was trained
    at, whether the stored images were upsampled, the feature width, the best probe's test and
    train accuracy in percent and its weight decay, the seconds the feature extraction took
    ("-" for a record made before it was recorded), and ``paper_accuracy`` (a fraction, shown in
    percent) beside every row."""
    from .tables import frame

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    rows = [
        (
            r["encoder"],
            r["image_size"],
            r.get("encoder_native_size") or _native_size(r["encoder"]) or "-",
            "yes" if r["image_size"] > r["stored_image_size"] else "no",
            r["n_features"],
            percent(r["metrics"]["test_accuracy"]),
            percent(r["metrics"]["train_accuracy"]),
            f"{r['metrics']['weight_decay']:g}",
            f"{r['extract_time_s']:.0f}" if "extract_time_s" in r else "-",
            percent(paper_accuracy),
        )
        for r in records
    ]
    return frame(rows, PROBE_COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wcbook.probe EXPERIMENT --sizes ...``: measure and write probe records."""
    parser = argparse.ArgumentParser(prog="python -m wcbook.probe", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="an encoder experiment with a frozen encoder")
    parser.add_argument("--encoder", choices=ENCODER_NAMES, help="probe this encoder instead")
    sides = parser.add_mutually_exclusive_group()
    sides.add_argument("--sizes", type=int, nargs="+", default=[128], help="image sides")
    sides.add_argument("--native", action="store_true",
                       help="the side the EfficientNet-Lite model was trained at")
    parser.add_argument("--device", default="cpu", help="where the features are computed (cpu, cuda)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    encoder = args.encoder or get_experiment(args.experiment).encoder_option("encoder")
    if args.native and _native_size(encoder) is None:
        parser.error(f"{encoder} has no native side; give --sizes")
    sizes = [_native_size(encoder)] if args.native else args.sizes
    root = Path(PROBES) if args.publish else Path(args.out or user_home()) / PROBES
    for size in sizes:
        record = probe_ceiling(args.experiment, size, encoder=encoder, device=args.device)
        path = probe_path(args.experiment, size, root, encoder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
        m = record["metrics"]
        print(f"{args.experiment} with {encoder} at {size} px: best probe (weight decay "
              f"{m['weight_decay']:g}) train {m['train_accuracy']:.4f}, test "
              f"{m['test_accuracy']:.4f} (features {record['extract_time_s']:.0f} s, all "
              f"{record['wall_time_s']:.0f} s) -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

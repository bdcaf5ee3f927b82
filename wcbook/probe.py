"""The ceiling a frozen encoder sets: a linear probe on its features over a whole data split.

A head trained on frozen features (the transfer experiment of Sec. 5.2.1) can only be as good as
the features let it be. :func:`probe_ceiling` measures that ceiling directly: the frozen encoder of
an encoder experiment turns every training and test image into features, and a multinomial
logistic regression (:func:`wcbook.encoders.linear_probe`, deterministic) is fitted on all the
training features. The image side is a parameter, so the same measurement answers whether a
larger input would lift the ceiling (the flower images are stored at 128 x 128; a larger side is
an upsampling of them).

Records go to ``probes/<experiment>/size<side>.json`` with the usual provenance (commit, device,
software, wall time)::

    python -m wcbook.probe flowers-transfer --sizes 128 224           # working folder
    python -m wcbook.probe flowers-transfer --sizes 128 224 --publish # the committed probes/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import load_color_images
from .encoded import build_encoder
from .encoders import extract_features, linear_probe
from .experiments import data_caveat, get_experiment
from .folders import add_output_arguments, user_home
from .training.provenance import environment, git_commit

__all__ = ["probe_ceiling", "probe_path", "load_probe", "main"]

#: Folder of the committed probe records, beside ``results/``.
PROBES = "probes"


def probe_path(experiment: str, image_size: int, root: str | Path = PROBES) -> Path:
    """``<root>/<experiment>/size<side>.json``."""
    return Path(root) / experiment / f"size{image_size}.json"


def _features(experiment: str, image_size: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's features of every image of ``split`` at ``image_size``."""
    config = get_experiment(experiment)
    encoder = build_encoder(
        config.encoder_option("encoder"),
        in_channels=config.in_channels,
        image_size=image_size,
        pretrained=config.encoder_option("pretrained"),
        frozen=True,
        seed=0,
    )
    images, labels = load_color_images(config.dataset, split, size=image_size)
    return extract_features(encoder, images, batch_size=64), labels


#: Weight decays of the probe's logistic regression (on standardised features).
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def probe_ceiling(
    experiment: str,
    image_size: int,
    *,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    iterations: int = 200,
) -> dict[str, Any]:
    """A linear probe on the frozen encoder of ``experiment`` (a colour-image encoder
    experiment with a pretrained, frozen encoder), trained on the whole training split and
    tested on the whole test split, the images at ``image_size``, once per weight decay; the
    record with provenance. ``metrics`` holds the best test accuracy over the weight decays
    (chosen on the test split itself, so an optimistic ceiling) and the train accuracy of
    that probe; ``by_weight_decay`` every probe."""
    config = get_experiment(experiment)
    if config.model != "encoded" or not config.encoder_option("frozen"):
        raise ValueError(f"{experiment} has no frozen encoder to probe")
    tick = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    train_x, train_y = _features(experiment, image_size, "train")
    test_x, test_y = _features(experiment, image_size, "test")
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
        "dataset": config.dataset,
        "caveat": data_caveat(config),
        "image_size": image_size,
        "stored_image_size": config.image_size,
        "n_train": len(train_y),
        "n_test": len(test_y),
        "n_features": int(train_x.shape[1]),
        "iterations": iterations,
        "metrics": {"train_accuracy": best[1], "test_accuracy": best[2], "weight_decay": best[0]},
        "by_weight_decay": [
            {"weight_decay": d, "train_accuracy": a, "test_accuracy": b} for d, a, b in probes
        ],
        "started_utc": started,
        "wall_time_s": round(time.perf_counter() - tick, 1),
        **environment(torch.device("cpu"), None, 1),
        "commit": commit,
        "dirty": dirty,
    }


def load_probe(experiment: str, image_size: int, root: str | Path = PROBES) -> dict | None:
    """The probe record of ``experiment`` at ``image_size`` under ``root``, or None."""
    path = probe_path(experiment, image_size, root)
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wcbook.probe EXPERIMENT --sizes ...``: measure and write probe records."""
    parser = argparse.ArgumentParser(prog="python -m wcbook.probe", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="an encoder experiment with a frozen encoder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128], help="image sides")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    root = Path(PROBES) if args.publish else Path(args.out or user_home()) / PROBES
    for size in args.sizes:
        record = probe_ceiling(args.experiment, size)
        path = probe_path(args.experiment, size, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
        m = record["metrics"]
        print(f"{args.experiment} at {size} px: best probe (weight decay {m['weight_decay']:g}) "
              f"train {m['train_accuracy']:.4f}, test {m['test_accuracy']:.4f} "
              f"({record['wall_time_s']:.0f} s) -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

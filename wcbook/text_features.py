"""Features of a frozen text encoder, computed once per review and kept in a file.

A frozen encoder maps a review to the same vector every epoch, so a head trained on top of it
needs the encoder's forward pass only once. :func:`cached_features` returns one of the encoder's
pooled outputs (:data:`POOLINGS`: BERT's ``pooler_output``, or the mean of the last hidden states
over the review's tokens) for a balanced, seeded subset of an IMDB split
(:func:`wcbook.text.load_imdb`), computing both on the first call and reading them from a file
afterwards. The files live outside the repository, under ``$WCBOOK_FEATURES`` or
``~/.cache/wcbook/features``::

    <folder>/<encoder>/L<max_length>/<split>-<count>-seed<seed>.pt     (count "all": every review)

Each file holds both poolings (n, hidden) in float32, the labels and a SHA-1 of each review, so a
request for fewer reviews is served from any larger file of the same encoder, length and split
that holds all of them. Encoding runs in chunks; an interrupted run resumes from its
``.partial`` file. On one CPU thread all-MiniLM-L6-v2 encodes about 10 reviews a second at
256 tokens (the whole 50,000 in about 1.5 hours); a GPU does them in minutes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "FEATURES_ENV",
    "POOLINGS",
    "features_folder",
    "cache_path",
    "pool",
    "encode_texts",
    "cached_features",
]

#: Environment variable naming the folder of the feature files.
FEATURES_ENV = "WCBOOK_FEATURES"
#: Reviews per chunk between two saves of the partial file.
CHUNK = 256
#: How a review's token states become one vector: BERT's pooler (tanh of a dense layer on the
#: first token's state; what the paper reads) or the mean over the non-padding tokens (what
#: sentence encoders such as all-MiniLM-L6-v2 were trained to give).
POOLINGS = ("pooler", "mean")


def features_folder() -> Path:
    """``$WCBOOK_FEATURES``, else ``~/.cache/wcbook/features``."""
    return Path(os.environ.get(FEATURES_ENV) or "~/.cache/wcbook/features").expanduser()


def _encoder_tag(encoder: str | None) -> str:
    """A folder name for an encoder: the offline default, a local folder's name, a hub name."""
    if encoder is None:
        return "all-MiniLM-L6-v2"
    return Path(encoder).name if Path(encoder).is_dir() else encoder.replace("/", "--")


def cache_path(
    encoder: str | None, max_length: int, split: str, count: int | None, seed: int = 0,
    folder: str | os.PathLike | None = None,
) -> Path:
    """Where the features of ``count`` reviews (None: all) of ``split`` are kept."""
    base = Path(folder) if folder is not None else features_folder()
    name = f"{split}-{'all' if count is None else count}-seed{seed}.pt"
    return base / _encoder_tag(encoder) / f"L{max_length}" / name


def _digests(texts: list[str]) -> list[str]:
    return [hashlib.sha1(text.encode()).hexdigest() for text in texts]


def pool(output: Any, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per review from an encoder's ``output`` (:data:`POOLINGS`), float32."""
    if pooling == "pooler":
        return output.pooler_output.float()
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    weights = mask.unsqueeze(2).to(output.last_hidden_state.dtype)
    summed = (output.last_hidden_state * weights).sum(dim=1)
    return (summed / weights.sum(dim=1).clamp_min(1)).float()


@torch.inference_mode()
def encode_texts(
    texts: list[str], tokenizer: Any, encoder: nn.Module, max_length: int, *,
    batch_size: int = 32, device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Both poolings (:data:`POOLINGS`) of each review, {pooling: (n, hidden)}, float32 on the
    CPU, the encoder in evaluation mode."""
    from .text import tokenize

    encoder = encoder.to(device).eval()
    out: dict[str, list[torch.Tensor]] = {name: [] for name in POOLINGS}
    for start in range(0, len(texts), batch_size):
        ids = tokenize(texts[start : start + batch_size], tokenizer, max_length).to(device)
        mask = (ids != tokenizer.pad_token_id).long()
        output = encoder(input_ids=ids, attention_mask=mask)
        for name in POOLINGS:
            out[name].append(pool(output, mask, name).cpu())
    hidden = int(encoder.config.hidden_size)
    return {k: torch.cat(v) if v else torch.empty(0, hidden) for k, v in out.items()}


def _from_larger(path: Path, digests: list[str]) -> dict[str, Any] | None:
    """The rows of ``digests`` from a larger file beside ``path`` that holds all of them."""
    split = path.name.split("-")[0]
    wanted = set(digests)
    for other in sorted(path.parent.glob(f"{split}-*.pt")):
        if other == path:
            continue
        saved = torch.load(other, weights_only=True)
        row = {d: i for i, d in enumerate(saved["digests"])}
        if wanted <= row.keys():
            index = torch.tensor([row[d] for d in digests], dtype=torch.long)
            return {
                **{name: saved[name][index] for name in POOLINGS},
                "labels": saved["labels"][index],
            }
    return None


def _encode_resumable(
    path: Path, texts: list[str], encoder_name: str | None, max_length: int,
    device: str | torch.device, progress: bool,
) -> dict[str, torch.Tensor]:
    """Encode ``texts`` chunk by chunk, saving ``<path>.partial`` after each chunk."""
    from tqdm import tqdm

    from .text import load_encoder

    partial = path.with_name(path.name + ".partial")
    done = torch.load(partial, weights_only=True) if partial.exists() else []
    tokenizer, encoder = load_encoder(encoder_name)
    bar = tqdm(total=len(texts), initial=CHUNK * len(done), desc=f"encoding {path.name}",
               disable=not progress, unit="review")
    for start in range(CHUNK * len(done), len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        done.append(encode_texts(chunk, tokenizer, encoder, max_length, device=device))
        torch.save(done, partial)
        bar.update(len(chunk))
    bar.close()
    partial.unlink(missing_ok=True)
    return {name: torch.cat([chunk[name] for chunk in done]) for name in POOLINGS}


def cached_features(
    split: str, count: int | None, *, encoder: str | None = None, max_length: int = 256,
    pooling: str = "pooler", seed: int = 0, root: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None, device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (n, hidden), labels (n,)) of the reviews ``load_imdb(split, limit=count,
    seed=seed)`` returns, pooled by ``pooling``, from the cache, or encoded now and cached
    (module docstring)."""
    from .text import load_imdb

    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    path = cache_path(encoder, max_length, split, count, seed, folder)
    texts, labels = load_imdb(split, root=root, limit=count, seed=seed)
    digests = _digests(texts)
    saved = torch.load(path, weights_only=True) if path.exists() else None
    if saved is not None and saved["digests"] != digests:
        saved = None  # another copy of the data set made this file: encode again
    if saved is None and path.parent.exists():
        saved = _from_larger(path, digests)
    if saved is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pooled = _encode_resumable(path, texts, encoder, max_length, device, progress)
        saved = {**pooled, "labels": labels, "digests": digests}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(saved, tmp)
        tmp.replace(path)
    if not torch.equal(saved["labels"], labels):
        raise ValueError(f"the labels in {path} do not match the data set's; delete the file")
    return saved[pooling], labels

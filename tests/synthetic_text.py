"""Writers of a synthetic IMDB archive and of a tiny randomly initialised BERT, for the text tests
(no downloads)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable

import torch

from wcbook.text import IMDB_ARCHIVE


def write_imdb_archive(root: Path, reviews: Iterable[tuple[str, str, int, int, str]]) -> Path:
    """The offline IMDB archive under data root ``root`` holding ``reviews``, each
    (split, polarity, id, rating, text); its path."""
    path = root / IMDB_ARCHIVE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:xz") as archive:
        for split, polarity, i, rating, text in reviews:
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{split}/{polarity}/{i}_{rating}.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def save_tiny_bert(folder: Path, words: list[str], layers: int, max_positions: int) -> str:
    """A 32-wide BERT of ``layers`` layers, randomly initialised (seed 0), with a word-level
    vocabulary of ``words``, saved with its tokenizer like a checkpoint; the folder. The
    vocabulary goes in as a dict: transformers 5 reads no ``vocab_file`` here (every word would be
    [UNK])."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokenizer = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_positions,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return str(folder)

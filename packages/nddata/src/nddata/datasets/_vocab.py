"""Text helpers (torchtext-style): ``Vocab``, ``build_vocab_from_iterator``, ``get_tokenizer``
and the language-model batching helpers ``batchify``/``get_batch``."""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Iterable

import ndcore

__all__ = ["Vocab", "build_vocab_from_iterator", "get_tokenizer", "batchify", "get_batch",
           "numericalize"]


class Vocab:
    """Token <-> index map (torchtext's ``Vocab``).

    Args:
        tokens: the tokens in index order (no duplicates).
    """

    def __init__(self, tokens: Iterable[str]):
        self._itos: list[str] = []
        self._stoi: dict[str, int] = {}
        self._default: int | None = None
        for t in tokens:
            self.append_token(t)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        idx = self._stoi.get(token)
        if idx is not None:
            return idx
        if self._default is None:
            raise RuntimeError(f"[Vocab] token {token!r} not found and default index is not set; "
                               f"call set_default_index (usually with the '<unk>' index)")
        return self._default

    def __call__(self, tokens: list[str]) -> list[int]:
        return self.lookup_indices(tokens)

    def set_default_index(self, index: int | None) -> None:
        """Index returned for out-of-vocabulary tokens (``None``: raise instead)."""
        self._default = index

    def get_default_index(self) -> int | None:
        return self._default

    def insert_token(self, token: str, index: int) -> None:
        """Insert ``token`` at ``index``, shifting later tokens up by one."""
        if token in self._stoi:
            raise RuntimeError(f"[Vocab] token {token!r} already exists with index {self._stoi[token]}")
        if not 0 <= index <= len(self._itos):
            raise RuntimeError(f"[Vocab] index {index} out of range [0, {len(self._itos)}]")
        self._itos.insert(index, token)
        self._stoi = {t: i for i, t in enumerate(self._itos)}

    def append_token(self, token: str) -> None:
        if token in self._stoi:
            raise RuntimeError(f"[Vocab] token {token!r} already exists with index {self._stoi[token]}")
        self._stoi[token] = len(self._itos)
        self._itos.append(token)

    def lookup_token(self, index: int) -> str:
        if not 0 <= index < len(self._itos):
            raise RuntimeError(f"[Vocab] index {index} out of range [0, {len(self._itos)})")
        return self._itos[index]

    def lookup_tokens(self, indices: list[int]) -> list[str]:
        return [self.lookup_token(int(i)) for i in indices]

    def lookup_indices(self, tokens: list[str]) -> list[int]:
        return [self[t] for t in tokens]

    def get_stoi(self) -> dict[str, int]:
        return dict(self._stoi)

    def get_itos(self) -> list[str]:
        return list(self._itos)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, default_index={self._default})"


def build_vocab_from_iterator(iterator: Iterable[Iterable[str]], min_freq: int = 1,
                              specials: list[str] | None = None, special_first: bool = True,
                              max_tokens: int | None = None) -> Vocab:
    """Build a :class:`Vocab` from an iterable of token lists.

    Tokens are ordered by descending frequency, ties broken alphabetically; those seen fewer
    than ``min_freq`` times are dropped.

    Args:
        specials: tokens added first (or last with ``special_first=False``), e.g. ``['<unk>']``.
        max_tokens: cap on the vocabulary size, specials included.
    """
    counter: Counter = Counter()
    for tokens in iterator:
        counter.update(tokens)
    specials = list(specials or [])
    for s in specials:
        counter.pop(s, None)
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [w for w, c in ordered if c >= min_freq]
    if max_tokens is not None:
        if max_tokens <= len(specials):
            raise ValueError("max_tokens must be greater than the number of special tokens")
        words = words[:max_tokens - len(specials)]
    return Vocab(specials + words if special_first else words + specials)


_BASIC_ENGLISH = [(re.compile(p), r) for p, r in (
    (r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "), (r"\(", " ( "),
    (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " "))]


def _basic_english(line: str) -> list[str]:
    line = line.lower()
    for pattern, repl in _BASIC_ENGLISH:
        line = pattern.sub(repl, line)
    return line.split()


def get_tokenizer(tokenizer: str | Callable | None, language: str = "en") -> Callable[[str], list[str]]:
    """Return a tokenizer (torchtext's ``get_tokenizer``).

    Args:
        tokenizer: ``None`` (split on whitespace), ``'basic_english'`` (lower-case, split off
            punctuation, drop quotes/semicolons/colons) or a callable returned as is.
        language: must be ``'en'`` for ``basic_english``.
    """
    if tokenizer is None:
        return str.split
    if callable(tokenizer):
        return tokenizer
    if tokenizer == "basic_english":
        if language != "en":
            raise ValueError("Basic normalization is only available for English(en)")
        return _basic_english
    raise ValueError(f"[get_tokenizer] unsupported tokenizer {tokenizer!r}: use None, "
                     f"'basic_english' or a callable (spacy/moses/etc. are not bundled)")


def numericalize(lines: Iterable[str], vocab: Vocab, tokenizer: Callable[[str], list[str]] = str.split,
                 eos: str | None = None) -> ndcore.Tensor:
    """Concatenate the token ids of ``lines`` into one int64 tensor (``eos`` appended per line;
    lines without tokens are skipped), as the PyTorch language-model examples prepare data."""
    ids: list[int] = []
    for line in lines:
        toks = tokenizer(line)
        if not toks:
            continue
        ids.extend(vocab(toks + ([eos] if eos is not None else [])))
    return ndcore.tensor(ids, dtype=ndcore.int64)


def batchify(data: ndcore.Tensor, bsz: int) -> ndcore.Tensor:
    """Cut a 1-D token stream into ``bsz`` columns: ``(len(data) // bsz, bsz)``, dropping the
    remainder (column ``j`` is the ``j``-th contiguous chunk)."""
    if data.ndim != 1:
        raise ValueError(f"[batchify] expected a 1-D token tensor, got shape {tuple(data.shape)}")
    if bsz <= 0 or data.shape[0] < bsz:
        raise ValueError(f"[batchify] cannot make {bsz} columns from {data.shape[0]} tokens")
    nbatch = data.shape[0] // bsz
    return data.narrow(0, 0, nbatch * bsz).reshape(bsz, nbatch).t().contiguous()


def get_batch(source: ndcore.Tensor, i: int, bptt: int = 35) -> tuple[ndcore.Tensor, ndcore.Tensor]:
    """The bptt window at row ``i`` of a :func:`batchify`-ed source.

    Returns:
        ``(data, target)``: ``data = source[i:i+L]`` of shape ``(L, bsz)`` and the next-token
        targets ``source[i+1:i+1+L]`` flattened to ``(L * bsz,)``, with
        ``L = min(bptt, len(source) - 1 - i)``.
    """
    seq_len = min(bptt, source.shape[0] - 1 - i)
    if seq_len <= 0:
        raise IndexError(f"[get_batch] row {i} leaves no targets in a source of {source.shape[0]} rows")
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].reshape(-1)
    return data, target

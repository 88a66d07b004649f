"""Word-level text normalisation shared by search, reward and the scripted expert."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")

# Small English stopword list: words that say nothing about what a product is.
STOPWORDS = frozenset(
    {
        "a", "am", "an", "and", "are", "as", "at", "be", "but", "by", "find", "for", "from", "get", "has", "have",
        "i", "in", "is", "it", "its", "looking", "me", "my", "need", "of", "on", "or", "our", "s", "show", "that",
        "the", "this", "to", "want", "was", "we", "with", "you", "your",
    }
)  # fmt: skip


def words(text: str) -> list[str]:
    """Lowercase alphanumeric words of ``text`` (punctuation and apostrophes split words)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    return [word for word in words(text) if word not in STOPWORDS]


def normalise(text: str) -> str:
    """``text`` as space-joined lowercase words: the form phrases are compared in."""
    return " ".join(words(text))


def has_phrase(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole consecutive words, ignoring case and punctuation."""
    needle = normalise(phrase)
    return bool(needle) and f" {needle} " in f" {normalise(text)} "

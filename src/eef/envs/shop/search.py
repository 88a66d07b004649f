"""BM25 product search (the ``bm25s`` package) over each product's title, attributes and description.

Results are every product that shares a word with the query, best first, at most
:data:`MAX_RESULTS` (WebShop returns 50). Equal scores keep catalog order, so a query always gives
the same pages. Unlike WebShop's Lucene index, option values and bullet points are not indexed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from eef.envs.shop.catalog import Catalog
from eef.envs.shop.schema import Product
from eef.envs.shop.text import content_words

MAX_RESULTS = 50


def indexed_text(product: Product) -> str:
    return " ".join([product.title, *product.attributes, product.description])


class SearchEngine:
    """``text`` says what of a product is indexed; ``k1`` and ``b`` are BM25's parameters (bm25s's
    defaults unless given: the ``webshop`` environment passes Lucene's, which WebShop's index used)."""

    def __init__(
        self,
        catalog: Catalog,
        text: Callable[[Product], str] = indexed_text,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        # bm25s runs a JAX top-k when it is imported, if JAX is installed, and JAX's GPU backend then
        # takes 75% of the GPU's memory (an H200's SFT ran out of memory so). Only bm25s's scoring is
        # used here, which is NumPy: keep JAX, unless told otherwise, on the CPU.
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import bm25s

        self._asins = [product.asin for product in catalog.products]
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._bm25.index([content_words(text(product)) for product in catalog.products], show_progress=False)
        self._vocabulary = set(self._bm25.vocab_dict)
        self.search = lru_cache(maxsize=4096)(self._search)

    def _search(self, query: str) -> tuple[str, ...]:
        """ASINs of the products matching ``query``, best first."""
        tokens = [token for token in content_words(query) if token in self._vocabulary]
        if not tokens:
            return ()
        scores = self._bm25.get_scores(tokens)
        matching = np.flatnonzero(scores > 0)
        # Highest score first; equal scores in catalog order (lexsort's last key is the primary one).
        order = matching[np.lexsort((matching, -scores[matching]))][:MAX_RESULTS]
        return tuple(self._asins[index] for index in order)

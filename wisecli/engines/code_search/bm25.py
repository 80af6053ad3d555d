"""Okapi BM25 over the code tokens, implemented plainly (specs/code-search.md §2.6).

score(q, d) = Σ_{t ∈ q (with repeats)} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl)),
idf(t) = ln(1 + (N − n_t + 0.5)/(n_t + 0.5)) (Lucene's non-negative form), k1 = 1.2, b = 0.75
(Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009). The per-(document, term)
weights are one `scipy.sparse` CSR matrix, so a query batch is one sparse product; terms the index never saw add 0.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp


class BM25:
    """Documents' BM25 weights as CSR [N docs, V terms] and the term list."""

    def __init__(self, weights: sp.csr_matrix, terms: list[str], k1: float = 1.2, b: float = 0.75):
        self.weights = weights
        self.terms = list(terms)
        self.index = {t: i for i, t in enumerate(self.terms)}
        self.k1, self.b = k1, b

    @classmethod
    def fit(cls, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> "BM25":
        """Weights of tokenised documents."""
        terms = sorted({t for d in docs for t in d})
        index = {t: i for i, t in enumerate(terms)}
        rows, cols, tfs = [], [], []
        for i, d in enumerate(docs):
            for t, c in Counter(d).items():
                rows.append(i)
                cols.append(index[t])
                tfs.append(c)
        n = len(docs)
        tf = sp.csr_matrix((np.asarray(tfs, np.float64), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                           shape=(n, len(terms)))
        return cls.from_counts(tf, terms, k1, b)

    @classmethod
    def from_counts(cls, tf: sp.csr_matrix, terms: list[str], k1: float = 1.2, b: float = 0.75) -> "BM25":
        """Weights from a term-count matrix (what `bm25.npz` stores)."""
        tf = sp.csr_matrix(tf, dtype=np.float64)
        n = tf.shape[0]
        dl = np.asarray(tf.sum(axis=1)).ravel()
        avgdl = dl.mean() if n and dl.mean() > 0 else 1.0
        df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        w = tf.copy()
        row_norm = np.repeat(k1 * (1 - b + b * dl / avgdl), np.diff(tf.indptr))
        w.data = idf[tf.indices] * tf.data * (k1 + 1) / (tf.data + row_norm)
        out = cls(w.tocsr(), terms, k1, b)
        out.counts = tf
        return out

    def query_matrix(self, queries: list[list[str]]) -> sp.csr_matrix:
        """Term counts of tokenised queries [Q, V] (unknown terms dropped: they add 0)."""
        rows, cols = [], []
        for i, q in enumerate(queries):
            for t in q:
                j = self.index.get(t)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        data = np.ones(len(rows), np.float64)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(queries), len(self.terms)))

    def scores(self, queries: list[list[str]]) -> np.ndarray:
        """[Q, N] scores of every document for every query: one sparse product."""
        return np.asarray((self.query_matrix(queries) @ self.weights.T).toarray())

    def save_arrays(self) -> dict:
        """Arrays for `bm25.npz` (term counts as CSR parts and the terms)."""
        c = self.counts
        return {"data": c.data.astype(np.float32), "indices": c.indices.astype(np.int32),
                "indptr": c.indptr.astype(np.int64), "shape": np.asarray(c.shape, np.int64),
                "terms": np.asarray(self.terms, dtype=str), "params": np.asarray([self.k1, self.b])}

    @classmethod
    def load_arrays(cls, z) -> "BM25":
        """The inverse of `save_arrays`."""
        tf = sp.csr_matrix((z["data"].astype(np.float64), z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        k1, b = (float(x) for x in z["params"])
        return cls.from_counts(tf, [str(t) for t in z["terms"]], k1, b)

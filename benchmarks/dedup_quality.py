"""Near-duplicate removal quality: gristmill dedup.minhash_v1 vs datasketch.MinHashLSH on one corpus with ground
truth, at the same threshold and number of permutations.

The corpus is built from real text (the hand-labelled article bodies of the HTML benchmark, English prose, the
Leipzig sentences of 12 languages, all under the shared data folder): every base document gets perturbed copies
of known kind and strength (word edits, insertions, deletions, boilerplate lines of site chrome around it, a mix
of these, and chains of copies of copies), and the doc_ids are shuffled. Ground truth is exact: the Jaccard
similarity of the word 5-gram shingle sets (the stage's own shingling, ``shingles_py``) of every pair of
documents that share a shingle (a sparse product, no sampling); the documents to remove are, in every connected
component of the pairs with Jaccard >= threshold, all but its smallest doc_id.

Rows: gristmill (verified pairs, keep-first rule), the connected-components rule over the same verified pairs
(what a component-based rule removes), datasketch MinHashLSH used as its documentation suggests for dedup
(query, then insert the document only when nothing matched) and with union-find over all its query results.
Also reported: removed documents that have no kept document with exact Jaccard >= threshold (removed for
nothing they resemble), and the scores against a second truth, the same keep-first rule over the exact pairs.

    python benchmarks/dedup_quality.py [--data DIR] [--threshold 0.8] [--num-perm 128]

DIR defaults to $GRISTMILL_SHARED_DATA, else ../shared/data beside the repository.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import datasketch  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

from gristmill.core.runtime import LocalRuntime  # noqa: E402
from gristmill.dedup.components import keep_first  # noqa: E402
from gristmill.dedup.minhash import ShingleSpec, shingles_py  # noqa: E402
from gristmill.dedup.stages import MinHashDedup  # noqa: E402
from gristmill.stages.base import DOCUMENT_SCHEMA, PART_COLUMN, GlobalContext  # noqa: E402

BOILERPLATE = [
    "Home | News | Sport | Business | Culture | Contact us",
    "We use cookies to improve your experience. By continuing you agree to our cookie policy.",
    "Subscribe to our newsletter and never miss a story.",
    "© 2024 Example Media Group. All rights reserved. Terms of use | Privacy policy",
    "Share this article: Facebook Twitter LinkedIn Email",
    "Related articles you may also like",
]
FILLER = "data system people time world report market group public service local national".split()


def default_data_dir() -> Path:
    env = os.environ.get("GRISTMILL_SHARED_DATA")
    return Path(env) if env else Path(_bootstrap.ROOT).parent / "shared" / "data"


def base_documents(data: Path) -> list[str]:
    docs = []
    truth = json.loads((data / "html" / "ground-truth.json").read_text())
    docs += [v["articleBody"] for v in truth.values() if len(v.get("articleBody", "").split()) >= 80]
    lines = (data / "tokenizer" / "corpus.en").read_text().splitlines()
    docs += ["\n".join(lines[i : i + 15]) for i in range(0, len(lines), 15)]
    for path in sorted((data / "langid").glob("*.txt")):
        lines = path.read_text().splitlines()
        docs += ["\n".join(lines[i : i + 12]) for i in range(0, 360, 12)]
    return docs


def perturb(text: str, kind: str, strength: float, rng: random.Random) -> str:
    words = text.split(" ")
    n = max(1, int(len(words) * strength))
    if kind == "edit":
        for i in rng.sample(range(len(words)), min(n, len(words))):
            words[i] = rng.choice(FILLER)
    elif kind == "insert":
        for _ in range(n):
            words.insert(rng.randrange(len(words) + 1), rng.choice(FILLER))
    elif kind == "delete":
        for i in sorted(rng.sample(range(len(words)), min(n, len(words) - 1)), reverse=True):
            del words[i]
    elif kind == "boilerplate":
        k = max(1, round(strength * 20))
        head = [rng.choice(BOILERPLATE) for _ in range(k)]
        tail = [rng.choice(BOILERPLATE) for _ in range(k)]
        return "\n".join(head + [text] + tail)
    elif kind == "mix":
        text = perturb(text, "edit", strength / 3, rng)
        text = perturb(text, "delete", strength / 3, rng)
        return perturb(text, "boilerplate", strength / 3, rng)
    return " ".join(words)


def corpus(data: Path, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for text in base_documents(data):
        docs.append(text)
        for kind in ("edit", "insert", "delete", "boilerplate", "mix"):
            if rng.random() < 0.5:
                docs.append(perturb(text, kind, rng.choice([0.01, 0.03, 0.05, 0.1, 0.2, 0.3]), rng))
        if rng.random() < 0.3:  # a chain of copies of copies: neighbours alike, its ends less so
            copy = text
            for _ in range(rng.randint(2, 5)):
                copy = perturb(copy, "edit", 0.04, rng)
                docs.append(copy)
    rng.shuffle(docs)  # doc_ids (positions) do not follow the families
    return docs


def exact_pairs(shingles: list[list[bytes]], threshold: float):
    """All pairs (a < b) with exact Jaccard >= threshold, and their Jaccard: a sparse document x shingle
    product gives the intersection of every pair that shares a shingle."""
    vocab: dict[bytes, int] = {}
    rows, cols = [], []
    for d, s in enumerate(shingles):
        ids = {vocab.setdefault(x, len(vocab)) for x in s}
        rows += [d] * len(ids)
        cols += sorted(ids)
    m = sp.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(shingles), len(vocab)))
    inter = sp.triu(m @ m.T, k=1).tocoo()
    size = np.asarray(m.sum(axis=1)).ravel()
    jac = inter.data / (size[inter.row] + size[inter.col] - inter.data)
    keep = jac >= threshold
    return inter.row[keep].astype(np.uint64), inter.col[keep].astype(np.uint64), jac[keep]


def component_removals(n: int, a: np.ndarray, b: np.ndarray) -> set[int]:
    """All but the smallest document of every connected component."""
    graph = sp.coo_matrix((np.ones(len(a)), (a.astype(np.int64), b.astype(np.int64))), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    first = {}
    for d, label in enumerate(labels):
        first.setdefault(label, d)
    return {d for d, label in enumerate(labels) if first[label] != d}


def keep_first_removals(a: np.ndarray, b: np.ndarray) -> set[int]:
    nodes, removed, _, _ = keep_first(np.r_[a, b], a, b, np.ones(len(a)))
    return set(nodes[removed].tolist())


def gristmill_run(docs: list[str], params: dict):
    """(removed by the stage, removed by the components of its verified pairs, stats, wall seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        table = pa.table(
            {"doc_id": pa.array(range(len(docs)), pa.uint64()), "source": ["bench"] * len(docs),
             "text": pa.array(docs, pa.large_string()), "url": pa.array([None] * len(docs), pa.string()),
             "origin": [str(i) for i in range(len(docs))]},
            schema=DOCUMENT_SCHEMA,
        ).append_column(PART_COLUMN, pa.array([0] * len(docs), pa.uint64()))
        half = len(docs) // 2
        parts = [f"{tmp}/part-{0:016x}.parquet", f"{tmp}/part-{1:016x}.parquet"]
        pq.write_table(table.slice(0, half), parts[0])
        pq.write_table(table.slice(half), parts[1])
        ctx = GlobalContext.for_step(f"{tmp}/run", MinHashDedup.name, 0, parts, LocalRuntime(), seed=0)
        stage = MinHashDedup(params)
        t = time.perf_counter()
        removed = stage.build(ctx)
        elapsed = time.perf_counter() - t
        clusters = pq.read_table(os.path.join(ctx.state, "clusters")).to_pydict()
        stats = {**ctx.stats.counts, **{k: int(v) for k, v in ctx.stats.figures.items()}}
    by_component = {d for d, c in zip(clusters["doc_id"], clusters["component_id"]) if d != c}
    return set(removed.tolist()), by_component, stats, elapsed


def datasketch_run(shingles, threshold: float, num_perm: int, weights=(0.5, 0.5)):
    """(removed by query-then-insert-if-new, removed by union-find over all query results, (b, r), seconds)."""
    t = time.perf_counter()
    hashes = []
    for s in shingles:
        m = datasketch.MinHash(num_perm=num_perm)
        m.update_batch(s)
        hashes.append(m)
    greedy = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    removed = set()
    for i, m in enumerate(hashes):
        if greedy.query(m):
            removed.add(i)
        else:
            greedy.insert(i, m)
    elapsed = time.perf_counter() - t
    full = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    for i, m in enumerate(hashes):
        full.insert(i, m)
    a, b = [], []
    for i, m in enumerate(hashes):
        for j in full.query(m):
            if j != i:
                a.append(min(i, j))
                b.append(max(i, j))
    by_union = component_removals(len(shingles), np.array(a, np.int64), np.array(b, np.int64))
    return removed, by_union, (greedy.b, greedy.r), elapsed


def scores(removed: set[int], truth: set[int]) -> tuple[float, float, float]:
    tp = len(removed & truth)
    p = tp / len(removed) if removed else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def unsupported(removed: set[int], n: int, a: np.ndarray, b: np.ndarray) -> int:
    """Removed documents without any kept document at exact Jaccard >= threshold."""
    kept = np.ones(n, dtype=bool)
    kept[list(removed)] = False
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    supported = set(bi[kept[ai]].tolist()) | set(ai[kept[bi]].tolist())
    return len(removed - supported)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="the shared data folder")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    docs = corpus(args.data)
    spec = ShingleSpec()
    shingles = [shingles_py(d, spec) for d in docs]
    a, b, _ = exact_pairs(shingles, args.threshold)
    truth = component_removals(len(docs), a, b)
    truth_keep_first = keep_first_removals(a, b)
    print(f"\n{len(docs)} documents; {len(a)} pairs with exact Jaccard >= {args.threshold}; to remove: "
          f"{len(truth)} (all but the smallest doc_id of each component), {len(truth_keep_first)} by keep-first "
          f"over the exact pairs; num_perm={args.num_perm}\n")
    base = {"threshold": args.threshold, "num_perm": args.num_perm, "partitions": args.partitions}
    gristmill_run(docs[:50] * 2, base)  # warm-up: every compiled kernel (the copies make pairs)
    rows = []
    for name, params in [
        ("gristmill `dedup.minhash_v1` defaults (exact Jaccard of shingle sets, weights 0.1/0.9)", {}),
        ("gristmill, `verify_with: signatures` (estimated Jaccard), weights 0.1/0.9", {"verify_with": "signatures"}),
        ("gristmill, `verify_with: signatures`, weights 0.5/0.5", {"verify_with": "signatures",
                                                                  "false_positive_weight": 0.5,
                                                                  "false_negative_weight": 0.5}),
    ]:
        removed, by_component, stats, secs = gristmill_run(docs, dict(base, **params))
        rows.append((f"{name}; {stats['bands']} x {stats['rows']}", removed, f"{secs:.2f}"))
        print(f"{name}: {stats['bands']} x {stats['rows']} bands x rows, {stats['candidate_pairs']} candidate "
              f"pairs, {stats['verified_pairs']} verified, {stats['components']} components (largest "
              f"{stats['largest_component']}), {stats['clusters']} clusters (largest {stats['largest_cluster']}), "
              f"{stats['oversized_buckets']} buckets over the cap")
        if not params:
            rows.append(("the defaults' verified pairs, connected components (all but the smallest)", by_component, ""))
    for weights in ((0.5, 0.5), (0.1, 0.9)):
        d_removed, d_union, (bands, rows_per_band), d_secs = datasketch_run(shingles, args.threshold, args.num_perm,
                                                                            weights)
        w = f"weights {weights[0]}/{weights[1]}; {bands} x {rows_per_band}"
        rows.append((f"datasketch MinHashLSH, query then insert if nothing matched; {w}", d_removed, f"{d_secs:.2f}"))
        rows.append((f"datasketch MinHashLSH, insert all, union-find of query results; {w}", d_union, ""))
    print("\n| system; bands x rows | removed | precision | recall | F1 | removed without a kept exact near-duplicate "
          "| F1 vs keep-first truth | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, removed, secs in rows:
        p, r, f1 = scores(removed, truth)
        f1_kf = scores(removed, truth_keep_first)[2]
        print(f"| {name} | {len(removed)} | {p:.3f} | {r:.3f} | {f1:.3f} | "
              f"{unsupported(removed, len(docs), a, b)} | {f1_kf:.3f} | {secs} |")
    print("\n(datasketch's wall time includes its hashing; gristmill's includes signing, bucketing, verification, "
          "components and writing the clusters, from Parquet)")


if __name__ == "__main__":
    main()

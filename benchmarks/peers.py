"""gristmill and datatrove 0.10.1 side by side, in one run, on the shared data: the crawl pipeline, MinHash dedup and
GPT-2 tokenization (``--parts``, all three by default), each side in its own process tree.

Crawl: ``benchmarks/crawl_peer.py`` (its docstring says what both pipelines do): WARCs built from the shared data's
HTML pages (``--copies`` of each, ``--warc-mb`` of HTML per file), datatrove with trafilatura against gristmill with
trafilatura (LID over the first 2,000 characters, its default, and over the whole document) and with resiliparse;
``--executor ray`` runs gristmill's side on its embedded Ray (workers' CPU counted).

Tokenization: ``benchmarks/tokenize_peer.py``'s whole runs at ``--tokenize-mb``.

MinHash dedup: gristmill ``dedup.minhash_v1`` vs datatrove 0.10's four MinHash steps, on the same
documents with the same parameters, each in its own process; plus signatures alone per core against
datasketch (and rensa, when importable).

Documents: the near-duplicate corpus of ``benchmarks/dedup_quality.py`` (real text from the shared data folder:
article bodies, English prose, Leipzig sentences of 12 languages, plus perturbed copies and chains of copies),
written once as JSONL (datatrove's input) and Parquet (gristmill's), one file each.

* datatrove: ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster`` ->
  ``MinhashDedupFilter`` + ``JsonlWriter``, each a ``LocalPipelineExecutor`` with one worker (buckets: one task per
  band, run one after the other), word 5-grams, sha1 64-bit hashes (its xxhash path fails with xxhash 4).
* gristmill: ``dedup.minhash_v1`` ``build`` on the local runtime (signatures, buckets, verification of every
  candidate pair by the exact Jaccard of the shingle sets, keep-first clusters) then ``apply`` to the part and the
  kept rows written as Parquet; word 5-grams, the same bands x rows (num_perm = bands * rows). Also
  ``gristmill-signatures``: the same with ``verify_with: signatures`` (each candidate pair's Jaccard estimated
  from the signatures, as datasketch's MinHashLSH results, which it does not verify at all).

CPU is that of each side's whole process tree (``os.wait4`` of the child: the child and every descendant it
waited for), start-up and imports included; each child also reports the CPU of its dedup work alone (after the
imports) and, for gristmill, the least CPU of the same work repeated ``WARM_REPEATS`` times in the same process
(warm: compiled kernels and imports loaded; not counted in its process-tree figure). The least of ``--repeat`` runs, alternating the sides.

Per core (``--per-core-rounds`` rounds in each of ``--repeat`` child processes of this checkout and, with
``--baseline``, of the baseline's, alternating; one thread; each implementation once per round, so a round's
figures share the machine's load; median and range reported, and the per-round ratios): gristmill ``signatures``
from raw text; gristmill's MinHash path in memory (``minhash_path``: the stage's functions on arrays, from text to
keep-first clusters, every candidate pair verified, by exact Jaccard and, a second row, by the signatures; each
checked to remove what the stage in that mode removes); datasketch
``MinHash.update_batch`` and datasketch signatures + ``MinHashLSH`` insert and query, and rensa ``RMinHash``, given
their shingles ready-made (making them is not counted against them); rensa's batch call on gristmill's flat
shingle hashes against gristmill's permutation step on the same hashes.

    python benchmarks/peers.py [--parts crawl minhash tokenize] [--data DIR] [--python PY] [--repeat 3]
        [--per-core-rounds 3]
        [--copies 2 --warc-mb 2.3 --executor local --peer-path DIR] [--bands 14 --rows 9] [--tokenize-mb 8]

DIR defaults to $GRISTMILL_SHARED_DATA, else ../shared/data beside the repository; PY (the interpreter of the
child processes) defaults to this one. rensa is a benchmark-only peer: ``pip install --target DIR rensa`` and put
DIR on PYTHONPATH to include it.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# --- the sides, each run in a child process ------------------------------------------------------------------------


def run_datatrove(work: Path, bands: int, rows: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    t0 = time.process_time()
    config = MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows, seed=1,
                           hash_config=HashConfig(precision=64, hash_fc="sha1"))
    out = work / "datatrove"
    reader = JsonlReader(str(work / "input"), glob_pattern="*.jsonl")
    steps = [
        ([reader, MinhashDedupSignature(output_folder=str(out / "signatures"), config=config)], 1),
        ([MinhashDedupBuckets(input_folder=str(out / "signatures"), output_folder=str(out / "buckets"),
                              config=config)], bands),
        ([MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"),
                              config=config)], 1),
        ([reader, MinhashDedupFilter(input_folder=str(out / "remove_ids")),
          JsonlWriter(str(out / "output"), compression=None)], 1),
    ]
    for i, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(out / f"logs-{i}"),
                              skip_completed=False).run()
    work_cpu = time.process_time() - t0
    kept = sum(1 for f in (out / "output").glob("*.jsonl") for _ in open(f))
    return {"work_cpu": work_cpu, "kept": kept}


def run_gristmill(work: Path, bands: int, rows: int, inputs: Path | None = None,
                  verify_with: str = "shingles") -> dict:
    import pyarrow.parquet as pq

    from gristmill.core.runtime import LocalRuntime
    from gristmill.dedup.stages import MinHashDedup
    from gristmill.stages.base import GlobalContext

    t0 = time.process_time()
    parts = sorted(str(p) for p in (inputs or work / "input").glob("*.parquet"))
    ctx = GlobalContext.for_step(str(work / "gristmill" / "run"), MinHashDedup.name, 0, parts, LocalRuntime(), seed=0)
    stage = MinHashDedup({"num_perm": bands * rows, "bands": bands, "rows": rows, "threshold": 0.8, "partitions": 1,
                          "verify_with": verify_with})
    removed = stage.build(ctx)
    kept = 0
    (work / "gristmill" / "output").mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        # ParquetFile, not pq.read_table: that one imports pyarrow.dataset, which imports pandas (pyarrow 26).
        result = stage.apply(pq.ParquetFile(part).read(), removed)
        table = result.table
        if result.reject_reason is not None:  # rejected rows carry a reason, kept ones a null
            table = table.filter(result.reject_reason.is_null())
        pq.write_table(table, str(work / "gristmill" / "output" / f"part-{i:05d}.parquet"))
        kept += table.num_rows
    return {"work_cpu": time.process_time() - t0, "kept": kept, "removed": int(len(removed))}


def run_per_core(work: Path, bands: int, rows: int, rounds: int) -> dict:
    """The per-core comparison (``signature_rows``) on the input documents, and what the in-memory path removed."""
    import pyarrow as pa

    with open(work / "input" / "docs.jsonl") as f:
        docs = [json.loads(line)["text"] for line in f]
    texts = pa.array(docs, pa.large_string())
    removed = {"shingles": minhash_path(texts, bands, rows)}
    times = signature_rows(docs, (bands, rows), rounds)
    if SIGNATURE_PATH_ROW in times:
        removed["signatures"] = minhash_path(texts, bands, rows, verify_with="signatures")
    clock = StepClock()
    for _ in range(rounds):
        minhash_path(texts, bands, rows, clock=clock)
    return {"times": times, "removed": removed, "steps": clock.seconds}


class StepClock:
    """CPU seconds of each named step, one figure per run of the steps (``minhash_path``'s breakdown)."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.process_time()
        yield
        self.seconds.setdefault(name, []).append(time.process_time() - start)


def run_gristmill_signatures(work: Path, bands: int, rows: int, inputs: Path | None = None) -> dict:
    return run_gristmill(work, bands, rows, inputs, verify_with="signatures")


WARM_REPEATS = 3  # repetitions of gristmill's work in its child process, after the measured run
SIDES = {"datatrove": run_datatrove, "gristmill": run_gristmill, "gristmill-signatures": run_gristmill_signatures}


def child_main(args) -> None:
    if args.side == "per-core":
        print("RESULT " + json.dumps(run_per_core(Path(args.work), args.bands, args.rows, args.repeat)), flush=True)
        return
    result = SIDES[args.side](Path(args.work), args.bands, args.rows)
    if args.side.startswith("gristmill"):  # the same work again in this process: its cost without the first-call loading
        # the least of a few: a single repetition still paid first touches of memory (0.09-0.15 s for one 0.10 s run)
        warm = [SIDES[args.side](Path(args.work) / f"again-{i}", args.bands, args.rows, Path(args.work) / "input")
                ["work_cpu"] for i in range(WARM_REPEATS)]
        result["warm_work_cpu"], result["warm_total_cpu"] = min(warm), sum(warm)
    print("RESULT " + json.dumps(result), flush=True)


def run_side(python: str, side: str, work: Path, bands: int, rows: int, checkout: Path = HERE.parent,
             peer_path: str | None = None, rounds: int = 1) -> dict:
    """One side in a child process (this script of ``checkout``, so its code): its result and the CPU of its
    whole process tree. ``rounds``: the per-core side's."""
    cmd = [python, str(checkout / "benchmarks" / "peers.py"), "--side", side, "--work", str(work),
           "--bands", str(bands), "--rows", str(rows), "--repeat", str(rounds)]
    t = time.perf_counter()
    env = None
    if peer_path and side == "datatrove":  # datatrove's own dependencies, on its side's path only
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), peer_path])))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed ({proc.returncode}):\n{err[-3000:]}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    # The warm repetitions ran in the child's own process, after the measured run: not part of that run's cost.
    tree_cpu = usage.ru_utime + usage.ru_stime - result.get("warm_total_cpu", 0.0)
    return dict(result, tree_cpu=tree_cpu, wall=wall)


# --- the corpus and the in-process signature comparison ------------------------------------------------------------


def write_inputs(docs: list[str], work: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gristmill.stages.base import DOCUMENT_SCHEMA, PART_COLUMN

    (work / "input").mkdir(parents=True)
    with open(work / "input" / "docs.jsonl", "w") as f:
        for i, text in enumerate(docs):
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    table = pa.table(
        {"doc_id": pa.array(range(len(docs)), pa.uint64()), "source": ["bench"] * len(docs),
         "text": pa.array(docs, pa.large_string()), "url": pa.array([None] * len(docs), pa.string()),
         "origin": [str(i) for i in range(len(docs))]},
        schema=DOCUMENT_SCHEMA,
    ).append_column(PART_COLUMN, pa.array([0] * len(docs), pa.uint64()))
    pq.write_table(table, work / "input" / "part-0000000000000000.parquet")


def minhash_path(texts, bands: int, rows: int, threshold: float = 0.8, max_bucket_size: int = 256,
                 verify_with: str = "shingles", clock: StepClock | None = None) -> int:
    """The stage's MinHash path in one process on arrays, without its storage and tasks: text -> signatures (and,
    verifying with shingles, every document's shingle hashes, as ``_sign_part``) -> band keys -> buckets -> every
    candidate pair verified: by the exact Jaccard of the candidates' sorted shingle sets (as
    ``_shingle_candidates``) or by the share of equal signature slots -> keep-first clusters. Returns the number
    of documents removed; ``clock`` times each step."""
    import numpy as np

    from gristmill.dedup.components import bucket_edges, keep_first
    from gristmill.dedup.lsh import band_keys
    from gristmill.dedup import minhash

    step = clock or (lambda name: contextlib.nullcontext())
    spec = minhash.ShingleSpec()
    with step("signatures" + (" and shingle hashes" if verify_with == "shingles" else "")):
        if verify_with == "shingles":
            sig, sh_off, hashes = minhash.signatures_and_shingles(texts, spec, bands * rows)
        else:
            sig = minhash.signatures(texts, spec, bands * rows)
    with step("band keys"):
        signed = np.flatnonzero((sig != minhash.empty_value("affine32")).any(axis=1))
        keys = band_keys(sig[signed], bands, rows)
    with step("buckets: candidate pairs"):
        a, b, _ = bucket_edges(keys.ravel(), np.repeat(signed.astype(np.uint64), bands), max_bucket_size)
    if verify_with == "shingles":
        with step("the candidates' sorted shingle sets"):
            candidates = np.unique(np.concatenate([a, b]))
            set_off, values = minhash.sorted_sets(*minhash.csr_take(sh_off, hashes, candidates.astype(np.int64)))
    with step("every candidate pair's Jaccard"):
        if verify_with == "shingles":
            sim = minhash.exact_jaccard(set_off, values, np.searchsorted(candidates, a),
                                        np.searchsorted(candidates, b))
        else:
            sim = minhash.estimated_jaccard(sig[a.astype(np.int64)], sig[b.astype(np.int64)])
    with step("keep-first clusters"):
        keep = sim >= threshold
        _, removed, _, _ = keep_first(np.concatenate([a[keep], b[keep]]), a[keep], b[keep], sim[keep])
    return int(removed.sum())


def cpu_rounds(fns: dict, repeat: int) -> dict[str, list[float]]:
    """CPU seconds of each function, ``repeat`` rounds, the functions one after the other within a round (so a
    round's figures share the machine's load), after one round not counted (first calls at full size: buffers,
    caches)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return times


def spread(values) -> str:
    """median [least-most]"""
    import statistics

    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def signature_rows(docs: list[str], bands_rows: tuple[int, int], repeat: int) -> dict[str, list[float]]:
    """CPU seconds per round of each implementation (``cpu_rounds``), one thread, in this process."""
    import datasketch
    import numpy as np
    import pyarrow as pa

    from gristmill.dedup.minhash import ShingleSpec, shingle_hashes, shingles_py, signatures, signatures_from_hashes
    from process_tree import least_cpu

    num_perm = bands_rows[0] * bands_rows[1]
    spec = ShingleSpec()
    texts = pa.array(docs, pa.large_string())
    signatures(texts[:4], spec, num_perm)  # load the compiled kernels before timing
    (hashes, offsets), _ = least_cpu(lambda: shingle_hashes(texts, spec), 1)
    shingles = [shingles_py(t, spec) for t in docs]

    def datasketch_default():
        for s in shingles:
            datasketch.MinHash(num_perm=num_perm, seed=1).update_batch(s)

    def datasketch_lsh():
        """Signatures, then every document inserted into and queried against MinHashLSH (no verification)."""
        sigs = []
        for s in shingles:
            m = datasketch.MinHash(num_perm=num_perm, seed=1)
            m.update_batch(s)
            sigs.append(m)
        lsh = datasketch.MinHashLSH(num_perm=num_perm, params=bands_rows)
        for i, m in enumerate(sigs):
            lsh.insert(i, m)
        return sum(len(lsh.query(m)) for m in sigs)

    fns = {
        "gristmill `signatures` (text -> normalized tokens -> token hashes -> signatures)":
            lambda: signatures(texts, spec, num_perm),
        "gristmill `signatures_from_hashes` (the permutation step alone, flat shingle hashes given)":
            lambda: signatures_from_hashes(hashes, offsets, num_perm),
        PATH_ROW: lambda: minhash_path(texts, *bands_rows),
        "datasketch `MinHash(num_perm, seed=1).update_batch` (sha1; shingles given)": datasketch_default,
        f"datasketch signatures + `MinHashLSH(params={bands_rows})`, insert and query every document":
            datasketch_lsh,
    }
    try:
        import rensa
    except ImportError:
        print("(rensa not importable: its rows are left out)")
    else:
        flat = hashes.astype(np.uint64)
        rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat[: offsets[1]], offsets[:2], num_perm, 1)
        from importlib.metadata import version

        fns[f"rensa {version('rensa')} `digest_matrix_from_token_byte_sets` (shingles given)"] = (
            lambda: rensa.RMinHash.digest_matrix_from_token_byte_sets(shingles, num_perm, 1))
        fns["rensa `digest_matrix_from_flat_token_hashes` (gristmill's flat shingle hashes given)"] = (
            lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm, 1))
    fns[SIGNATURE_PATH_ROW] = lambda: minhash_path(texts, *bands_rows, verify_with="signatures")
    return cpu_rounds(fns, repeat)


PATH_ROW = ("gristmill MinHash path in memory (text -> signatures and shingle hashes -> buckets -> every candidate "
            "pair's exact Jaccard -> keep-first clusters)")
SIGNATURE_PATH_ROW = ("gristmill MinHash path in memory, `verify_with: signatures` (text -> signatures -> buckets -> "
                      "every candidate pair's share of equal slots -> keep-first clusters)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", nargs="+", choices=["crawl", "minhash", "tokenize"],
                    default=["crawl", "minhash", "tokenize"])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder")
    ap.add_argument("--copies", type=int, default=2, help="crawl: copies of each HTML page in the WARCs")
    ap.add_argument("--warc-mb", type=float, default=2.3, help="crawl: MB of HTML per WARC file")
    ap.add_argument("--executor", choices=["local", "ray"], default="local", help="crawl: gristmill's executor")
    ap.add_argument("--peer-path", default=os.environ.get("GRISTMILL_PEER_PATH"),
                    help="a folder with the dependencies datatrove's steps need and gristmill's environment "
                    "lacks (pip install --target DIR faust-cchardet python-magic fasteners orjson), on its side only")
    ap.add_argument("--tokenize-mb", type=float, default=8.0, help="tokenization: MB of text")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of both sides' processes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=9)
    ap.add_argument("--baseline", type=Path, help="another checkout of gristmill: its crawl pipeline "
                    "(trafilatura) runs as one more side and, with this script copied into its benchmarks/, its "
                    "MinHash stage as a third side")
    ap.add_argument("--side", choices=sorted(SIDES) + ["per-core"], help=argparse.SUPPRESS)
    ap.add_argument("--per-core-rounds", type=int, default=3, help="MinHash: rounds of the per-core comparison in "
                    "each of its --repeat child processes per checkout")
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return child_main(args)
    from shared_data import SHARED_DATA

    data = args.data or SHARED_DATA
    if "crawl" in args.parts:
        crawl_part(args, data)
    if "minhash" in args.parts:
        minhash_part(args)
    if "tokenize" in args.parts:  # last: tokenize_peer sets the tokenizers' thread variables at import
        tokenize_part(args, data)


def crawl_part(args, data: Path) -> None:
    import crawl_peer

    print("\n## Crawl pipeline\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="crawl-peer-") as tmp:
        print(crawl_peer.compare(data, Path(tmp), args.repeat, args.copies, args.warc_mb, args.executor, HERE.parent,
                                 args.peer_path, args.baseline.resolve() if args.baseline else None))


def tokenize_part(args, data: Path) -> None:
    import tokenize_peer

    print("\n## GPT-2 tokenization\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="tok-peer-") as tmp:
        tokenizer = tokenize_peer.gpt2_tokenizer_json(data, tmp)
        docs = tokenize_peer.documents(args.tokenize_mb, data)
        jsonl = tokenize_peer.write_jsonl(docs, os.path.join(tmp, "in"))
        best = tokenize_peer.whole_runs(jsonl, tokenizer, tmp, args.repeat, args.peer_path)
    (gw, gc), (dw, dc) = best["gristmill"], best["datatrove"]
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"\n{mb:.1f} MB, {len(docs)} documents; least of {args.repeat} runs per side\n")
    print("| system | process-tree CPU s | wall s |\n|---|---:|---:|")
    print(f"| gristmill | {gc:.2f} | {gw:.2f} |\n| datatrove | {dc:.2f} | {dw:.2f} |")
    print(f"\ngristmill/datatrove CPU: {gc / dc:.3f}x")


def minhash_part(args) -> None:
    print("\n## MinHash dedup\n", flush=True)
    import dedup_quality  # the parent only: its imports (datasketch, scipy) are not the children's

    docs = dedup_quality.corpus(args.data or dedup_quality.default_data_dir())
    mb = sum(len(d.encode()) for d in docs) / 1e6
    to_run = {side: (side, HERE.parent) for side in SIDES}
    if args.baseline:
        to_run[f"gristmill at {args.baseline}"] = ("gristmill", args.baseline.resolve())
    results: dict[str, list[dict]] = {name: [] for name in to_run}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for k, (name, (side, checkout)) in enumerate(to_run.items()):
                work = Path(tmp) / f"{k}-{r}"
                write_inputs(docs, work)
                results[name].append(run_side(args.python, side, work, args.bands, args.rows, checkout,
                                              args.peer_path))
    best = {side: min(runs, key=lambda x: x["tree_cpu"]) for side, runs in results.items()}
    work_best = {side: min(x["work_cpu"] for x in runs) for side, runs in results.items()}
    print(f"\n{len(docs)} documents, {mb:.1f} MB; word 5-grams, {args.bands} bands x {args.rows} rows; least of "
          f"{args.repeat} runs per side\n")
    print("| system | process-tree CPU s | dedup work CPU s (after imports) | the same work again, warm | wall s | "
          "documents kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for side in to_run:
        b = best[side]
        warm = min((x["warm_work_cpu"] for x in results[side] if "warm_work_cpu" in x), default=None)
        warm_cell = f"{warm:.2f}" if warm is not None else "-"
        print(f"| {side} | {b['tree_cpu']:.2f} | {work_best[side]:.2f} | {warm_cell} | {b['wall']:.2f} | "
              f"{b['kept']:,} |")
    g, d = best["gristmill"], best["datatrove"]
    print(f"\ngristmill/datatrove CPU: process tree {g['tree_cpu'] / d['tree_cpu']:.3f}x, "
          f"dedup work {work_best['gristmill'] / work_best['datatrove']:.3f}x")

    per_core_part(args, docs, mb, {"shingles": g["removed"], "signatures": best["gristmill-signatures"]["removed"]},
                  {"": [x["warm_work_cpu"] for x in results["gristmill"]],
                   ", `verify_with: signatures`": [x["warm_work_cpu"] for x in results["gristmill-signatures"]]})


def per_core_part(args, docs: list[str], mb: float, removed: dict[str, int],
                  stage_warm: dict[str, list[float]]) -> None:
    """The per-core comparison, in child processes of this checkout and of the baseline's, alternating."""
    import statistics

    checkouts = {"this checkout": HERE.parent}
    if args.baseline:
        checkouts[f"gristmill at {args.baseline}"] = args.baseline.resolve()
    times: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    steps: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(docs, Path(tmp))
        for _ in range(args.repeat):
            for name, checkout in checkouts.items():
                result = run_side(args.python, "per-core", Path(tmp), args.bands, args.rows, checkout,
                                  rounds=args.per_core_rounds)
                counts = result["removed"]  # a count (a baseline's script), or one per verification mode
                for mode, n in (counts if isinstance(counts, dict) else {"shingles": counts}).items():
                    if n != removed[mode]:
                        raise RuntimeError(f"{name}: the in-memory path ({mode}) removed {n}, the stage {removed[mode]}")
                for row, values in result["times"].items():
                    times[name].setdefault(row, []).extend(values)
                for row, values in result.get("steps", {}).items():
                    steps[name].setdefault(row, []).extend(values)
    for name, rows in times.items():
        names = list(rows)
        ours, path, ds, ds_lsh = (rows[names[i]] for i in (0, 2, 3, 4))
        sig_path = rows.get(SIGNATURE_PATH_ROW)
        print(f"\n### Per core, {name}: num_perm={args.bands * args.rows}, one thread, {len(ours)} rounds "
              f"({args.repeat} processes x {args.per_core_rounds}; each implementation once per round): CPU s, "
              "median [least-most]\n")
        print("| implementation | CPU s | MB/s per core (median) | CPU / gristmill `signatures` (medians) |")
        print("|---|---:|---:|---:|")
        for row, values in rows.items():
            m = statistics.median(values)
            print(f"| {row} | {spread(values)} | {mb / m:.1f} | {m / statistics.median(ours):.2f} |")
        print("\nPer-round ratios, median [least-most]:")
        print(f"* datasketch `update_batch` / gristmill `signatures`: {spread([d / o for d, o in zip(ds, ours)])}x")
        print(f"* datasketch signatures + LSH / the MinHash path in memory: "
              f"{spread([d / p for d, p in zip(ds_lsh, path)])}x")
        if sig_path:
            print(f"* datasketch signatures + LSH / the MinHash path in memory, `verify_with: signatures`: "
                  f"{spread([d / p for d, p in zip(ds_lsh, sig_path)])}x")
        if name == "this checkout":
            for mode, warm in stage_warm.items():
                print(f"* datasketch signatures + LSH (median) / this checkout's stage{mode}, warm (`build` + "
                      f"`apply`, Parquet in and out; least of {WARM_REPEATS} in each of {len(warm)} processes): "
                      f"{spread([statistics.median(ds_lsh) / w for w in warm])}x")
        if steps[name]:
            print("\nThe MinHash path in memory (exact verification) step by step, CPU ms, median [least-most]:\n")
            print("| step | CPU ms |\n|---|---:|")
            for row, values in steps[name].items():
                print(f"| {row} | {spread([1000 * v for v in values])} |")

if __name__ == "__main__":
    main()

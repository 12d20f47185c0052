"""Benchmark the BBPE tokenizer: training time and peak memory, compression vs GPT-2, stage encode overhead.

    python benchmarks/tokenizer.py            # 50 MB of real text (about 3 minutes on 2 cores)
    python benchmarks/tokenizer.py --mb 5     # quick run
    python benchmarks/tokenizer.py --corpus llama-web [--data ../shared/data]   # web text, LLaMA sources

``--corpus code-heavy`` (default): code (the CPython standard library sources), web pages (the raw HTML of
``DATA/html``) and prose (corpus.en, the 12 langid sentence files, the hand-extracted article texts of the HTML
pages). Held out from training: all of langid/en.txt (English), the second half of langid/zh.txt (Chinese) and
every 20th stdlib file (code). Also the encode throughput of the tokenize stage.

``--corpus llama-web``: web-like text of ``DATA`` under LLaMA source names (``load_llama_web``), trained at the
GPT-2 vocabulary with the step's defaults (the LLaMA shares, ``max_share_ratio``) and, side by side, with the
shares of the bytes present; bytes/token of each and of GPT-2 on held-out English web text, English sentences,
Chinese and code.

``--corpus llama-web --levers``: the levers of the English gap one at a time at the GPT-2 vocabulary, through
the step: the second (superword) training stage and its share and pieces, ``min_frequency``, multi-digit
numbers, and a ``common_crawl`` of English and Chinese only (the most that weighting the sample by language
could give English).

``--corpus llama-web --doc-html DIR ...``: the same corpus plus the text of installed documentation HTML (Debian
packages, read through gristmill's decoding and extraction, exact duplicates once) as ``common_crawl`` pages, in
growing amounts (``--doc-mb``; ``--doc-english-only`` adds only its English pages): the step's defaults at the
GPT-2 vocabulary, held-out bytes/token against the English and Chinese MB of the sample the step drew.

Training runs through the real pipeline step (``tokenizer.train_bbpe_v1`` build() on Parquet parts, local
executor), each tokenizer in a fresh process so its peak RSS is its own. ``DATA`` is ``--data``, else
``$GRISTMILL_SHARED_DATA``, else ``../shared/data`` next to the repository. Prints Markdown tables.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import gzip
import json
import multiprocessing as mp
import os
import sysconfig
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


GPT2_VOCAB = 50257
DEFAULT_DATA = os.environ.get("GRISTMILL_SHARED_DATA", str(_bootstrap.ROOT.parent / "shared" / "data"))


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def _stdlib_files(code_dir: str) -> list[str]:
    py_files = sorted(glob.glob(f"{code_dir}/**/*.py", recursive=True))
    return [p for p in py_files if "/site-packages/" not in p] + [p for p in py_files if "/site-packages/" in p]


def load_corpus(mb: float, data: str, code_dir: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The code-heavy corpus of issue 5: (training documents per source, held-out documents per language)."""
    budget = int(mb * 1e6)
    en_lines = _read(f"{data}/tokenizer/corpus.en").splitlines()
    text = ["\n".join(en_lines[i : i + 20]) for i in range(0, len(en_lines), 20)]
    zh = _read(f"{data}/langid/zh.txt").splitlines()
    for path in sorted(glob.glob(f"{data}/langid/*.txt")):
        if path.endswith("/en.txt"):
            continue
        lines = zh[: len(zh) // 2] if path.endswith("/zh.txt") else _read(path).splitlines()
        text.extend(lines)
    with open(f"{data}/html/ground-truth.json", encoding="utf-8") as f:
        text.extend(v["articleBody"] for v in json.load(f).values() if v.get("articleBody"))
    used = sum(len(t.encode()) for t in text)

    # Raw HTML up to 30% of the budget, code for the rest.
    html, html_bytes, html_cap = [], 0, min(int(0.3 * budget), budget - used)
    for path in sorted(glob.glob(f"{data}/html/html/*.html.gz")):
        page = gzip.open(path).read().decode("utf-8", errors="replace")
        if html_bytes + len(page.encode()) > html_cap:
            break
        html.append(page)
        html_bytes += len(page.encode())
    used += html_bytes

    code, held_code = [], []
    for i, path in enumerate(_stdlib_files(code_dir)):
        if i % 20 == 0 and sum(map(len, held_code)) < 2_000_000:
            held_code.append(_read(path))
            continue
        if used >= budget:
            continue
        doc = _read(path)
        code.append(doc)
        used += len(doc.encode())
    held = {"English": _read(f"{data}/langid/en.txt").splitlines(), "Chinese": zh[len(zh) // 2 :], "code": held_code}
    return {"code": code, "html": html, "text": text}, held


def _chunks(lines: list[str], size: int) -> list[str]:
    return ["\n".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def _warc_texts(path: str, record_type) -> list[str]:
    """Main-content text of each HTML response (or the text of each WET conversion record) of a WARC file."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    from gristmill.stages.ingest.html import ExtractionOptions, make_extractor

    extract = make_extractor(ExtractionOptions())
    texts = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=record_type):
            body = record.reader.read()
            text = bytes_to_str(body, detect_encoding(body))
            texts.append(extract(text) if record_type == WarcRecordType.response else text)
    return [t for t in texts if t.strip()]


def _is_english(texts: list[str]) -> list[bool]:
    from gristmill.stages.lang.fasttext_model import default_lid_model, load_model

    model = load_model(default_lid_model())
    labels, _ = model.predict([" ".join(t.split())[:2000] for t in texts])
    return [label[0] == "__label__en" for label in labels]


def load_llama_web(data: str, code_dir: str, code_mb: float) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Web-like text under LLaMA source names, and held-out sets no training document overlaps.

    The 181 labelled article pages (html/) are dealt by sorted name: every 5th is held out (its hand-labelled
    article text, the English ones, is the "English web" set); of the rest, the hand-labelled article text is
    ``c4`` (clean web prose) and all the visible text of the page (resiliparse, like a WET record)
    ``common_crawl``. Also in
    ``common_crawl``: the HTML responses of the Common Crawl WARC sample (zh, de, ru, en, nl pages),
    corpus.en, the Leipzig sentences of 10 languages and the first half of zh.txt, 20 sentences per document.
    ``wikipedia``: the WET text of the Wikipedia page of the whirlwind sample. ``github``: the CPython standard
    library (``code_dir``, up to ``code_mb``), every 20th file held out. LLaMA's books, arxiv and
    stackexchange have no counterpart in the shared data and are left absent.
    """
    from fastwarc.warc import WarcRecordType

    with open(f"{data}/html/ground-truth.json", encoding="utf-8") as f:
        truth = json.load(f)
    pages = sorted(glob.glob(f"{data}/html/html/*.html.gz"))
    extract_page = None
    c4, crawl, held_articles = [], [], []
    for i, path in enumerate(pages):
        body = truth.get(os.path.basename(path).split(".")[0], {}).get("articleBody") or ""
        if i % 5 == 0:
            held_articles.append(body)
            continue
        c4.append(body)
        if extract_page is None:
            from gristmill.stages.ingest.html import ExtractionOptions, make_extractor

            # All the visible text of the page, as in Common Crawl's WET files, not just its main content.
            extract_page = make_extractor(ExtractionOptions(main_content=False, comments=True, post_meta=True))
        crawl.append(extract_page(gzip.open(path).read().decode("utf-8", errors="replace")))
    held_articles = [t for t, en in zip(held_articles, _is_english(held_articles)) if en and t.strip()]
    crawl += _warc_texts(f"{data}/warc/cc-main-2020-34-sample.warc.gz", WarcRecordType.response)
    crawl += _chunks(_read(f"{data}/tokenizer/corpus.en").splitlines(), 20)
    zh = _read(f"{data}/langid/zh.txt").splitlines()
    for path in sorted(glob.glob(f"{data}/langid/*.txt")):
        if path.endswith("/en.txt"):
            continue
        crawl += _chunks(zh[: len(zh) // 2] if path.endswith("/zh.txt") else _read(path).splitlines(), 20)
    wikipedia = _warc_texts(f"{data}/warc/cc-main-2024-22-whirlwind.warc.wet.gz", WarcRecordType.conversion)

    code, held_code, code_bytes = [], [], 0
    for i, path in enumerate(_stdlib_files(code_dir)):
        if i % 20 == 0:
            if sum(map(len, held_code)) < 2_000_000:
                held_code.append(_read(path))
        elif code_bytes < code_mb * 1e6:
            code.append(_read(path))
            code_bytes += len(code[-1].encode())
    corpus = {"common_crawl": [t for t in crawl if t.strip()], "c4": [t for t in c4 if t.strip()],
              "wikipedia": wikipedia, "github": code}
    held = {"English web (held-out articles)": held_articles, "English sentences (langid en.txt)":
            _read(f"{data}/langid/en.txt").splitlines(), "Chinese (2nd half of langid zh.txt)": zh[len(zh) // 2 :],
            "code": held_code}
    return corpus, held


def shingle_overlap(held: list[str], training: list[str], n: int = 8) -> float:
    """Share of the held-out documents' n-word shingles that also occur in the training text."""
    def shingles(text: str) -> set[str]:
        words = text.split()
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    seen = set().union(*map(shingles, training))
    held_shingles = [shingles(doc) for doc in held]
    return sum(len(s & seen) for s in held_shingles) / max(1, sum(map(len, held_shingles)))


def load_doc_html(folders: list[str]) -> tuple[list[str], int]:
    """The text of every HTML page under ``folders`` (``.html``/``.htm``, optionally gzipped), decoded and
    extracted as gristmill's ingest does (charset rules of ``ingest.encoding``, the default main-content
    extraction), empty pages dropped and exact duplicates (after whitespace normalization) kept once: a
    translated manual falls back to the English page for untranslated chapters, and the pipeline's dedup
    stages run before tokenizer training. Also the number of non-empty pages read."""
    from gristmill.stages.ingest.encoding import decode_html
    from gristmill.stages.ingest.html import ExtractionOptions, make_extractor

    extract = make_extractor(ExtractionOptions())
    texts, seen, pages = [], set(), 0
    for folder in folders:
        for path in sorted(glob.glob(f"{folder}/**/*", recursive=True)):
            if not path.endswith((".html", ".htm", ".html.gz", ".htm.gz")) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                body = f.read()
            text = extract(decode_html(gzip.decompress(body) if path.endswith(".gz") else body), None)
            key = " ".join(text.split())
            pages += bool(key)
            if key and key not in seen:
                seen.add(key)
                texts.append(text)
    return texts, pages


def take_mb(docs: list[str], mb: float) -> list[str]:
    """Documents dealt in a fixed pseudo-random order until ``mb`` MB; a smaller take is part of a larger one."""
    order = sorted(range(len(docs)), key=lambda i: (i * 2654435761) % (1 << 32))
    taken, size = [], 0
    for i in order:
        if size >= mb * 1e6:
            break
        taken.append(docs[i])
        size += len(docs[i].encode())
    return taken


def write_parts(corpus: dict[str, list[str]], directory: str) -> list[str]:
    parts = []
    for index, (source, docs) in enumerate(sorted(corpus.items())):
        table = pa.table({
            "doc_id": pa.array([(index << 32) | i for i in range(len(docs))], pa.uint64()),
            "source": pa.array([source] * len(docs), pa.string()),
            "text": pa.array(docs, pa.large_string()),
        })
        path = os.path.join(directory, f"part-{index:05d}.parquet")
        pq.write_table(table, path)
        parts.append(path)
    return parts


def _status_mib(key: str) -> float:
    """VmRSS / VmHWM of this process in MiB (VmHWM, unlike ru_maxrss, is not inherited across exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _train_child(parts: list[str], run_dir: str, params: dict, queue) -> None:
    from gristmill.core.runtime import LocalRuntime
    from gristmill.stages.base import GlobalContext
    from gristmill.stages.tokenize.train import TrainBbpeV1

    rss_before = _status_mib("VmRSS")
    ctx = GlobalContext.for_step(run_dir, TrainBbpeV1.name, 0, parts, LocalRuntime(), 0)
    started, cpu = time.perf_counter(), time.process_time()
    TrainBbpeV1(params).build(ctx)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    with open(os.path.join(run_dir, "tokenizer", "tokenizer_meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    queue.put({"wall": wall, "cpu": cpu, "train": meta["training_seconds"], "sample_bytes": meta["sample"]["bytes"],
               "peak_mib": _status_mib("VmHWM"), "start_mib": rss_before, "sha": meta["tokenizer_sha256"],
               "meta": meta})


def train_in_child(parts: list[str], run_dir: str, params: dict) -> dict:
    """Train through the ``tokenizer.train_bbpe_v1`` step in a fresh process; its tokenizer is in RUN_DIR/tokenizer."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_child, args=(parts, run_dir, params, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def gpt2_tokenizer(data: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(f"{data}/tokenizer/gpt2_vocab.json", f"{data}/tokenizer/gpt2_merges.txt"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def bytes_per_token(tokenizer, docs: list[str]) -> float:
    encodings = tokenizer.encode_batch(docs, add_special_tokens=False)
    for doc, enc in zip(docs[:50], encodings[:50]):  # lossless, or the ratio means nothing
        assert tokenizer.decode(enc.ids, skip_special_tokens=False) == doc
    return sum(len(d.encode()) for d in docs) / sum(len(e.ids) for e in encodings)


def _encode_loop(tok, method: str, batches: list[list[str]]) -> None:
    encode = getattr(tok, method)
    for batch in batches:  # each batch's encodings dropped before the next, as in the stage
        encode(batch, add_special_tokens=False)


def throughput(tokenizer_path: str, docs: list[str], repeats: int) -> dict[str, tuple[float, float]]:
    """Best-of-``repeats`` (wall s, CPU s) of the stage's process() vs bare encode loops on the same batches.

    CPU seconds (all threads) give MB per CPU-second, i.e. per core, which stays meaningful on a shared,
    busy machine where wall time does not.
    """
    from tokenizers import Tokenizer

    from gristmill.stages.tokenize.encode import TokenizeBbpeV1, batch_bounds

    table = pa.table({"doc_id": pa.array(range(len(docs)), pa.uint64()), "text": pa.array(docs, pa.large_string())})
    stage = TokenizeBbpeV1({"path": tokenizer_path})
    stage.setup()
    tok = Tokenizer.from_file(tokenizer_path)
    tok.encode_special_tokens = True
    sizes = pc.binary_length(table["text"]).to_numpy()
    batches = [docs[a:b] for a, b in batch_bounds(sizes, stage.params.batch_bytes)]
    runs = {
        "stage process()": lambda: stage.process(table),
        "bare encode_batch": lambda: _encode_loop(tok, "encode_batch", batches),
        "bare encode_batch_fast": lambda: _encode_loop(tok, "encode_batch_fast", batches),
    }
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeats):  # interleaved, so drift hits every variant alike
        for name, fn in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def english_scaling(corpus: dict, held: dict, gpt2, fractions: list[float], vocab: int, tmp: str) -> None:
    """English held-out bytes/token of tokenizers trained on growing parts of the English training text alone,
    with the defaults (two stages) and with one stage (``superword_share: 0``)."""
    from tokenizers import Tokenizer

    text = corpus["c4"] + corpus["common_crawl"]
    english = [doc for doc, en in zip(text, _is_english(text)) if en]
    sets = {label: docs for label, docs in held.items() if label.startswith("English")}
    variants = {"defaults": {}, "one stage": {"superword_share": 0}}
    print(f"\nEnglish alone (c4 + the English common_crawl documents), vocabulary {vocab}:\n")
    print("| English training MB | tokenizer | vocabulary reached | " + " | ".join(sets) + " |")
    print("|---:|---|---:|" + "---:|" * len(sets))
    for fraction in fractions:
        docs = [doc for i, doc in enumerate(english) if (i * 7919) % 100 < fraction * 100]
        for label, overrides in variants.items():
            run_dir = os.path.join(tmp, f"english-{fraction}-{label.replace(' ', '-')}")
            os.makedirs(run_dir)
            r = train_in_child(write_parts({"c4": docs}, run_dir), run_dir, {"vocab_size": vocab, **overrides})
            tok = Tokenizer.from_file(os.path.join(run_dir, "tokenizer", "tokenizer.json"))
            cells = [f"{bytes_per_token(tok, d):.2f}" for d in sets.values()]
            print(f"| {r['sample_bytes'] / 1e6:.2f} | {label} | {r['meta']['vocab_size']} | " + " | ".join(cells)
                  + " |", flush=True)
    print("| | GPT-2 | 50257 | " + " | ".join(f"{bytes_per_token(gpt2, d):.2f}" for d in sets.values()) + " |")


def sample_language_mb(parts: list[str], meta: dict) -> dict[str, float]:
    """MB per lid.176 language in the training sample the step drew (re-drawn from its plan and seed)."""
    from gristmill.stages.tokenize.bbpe import BbpeParams
    from gristmill.stages.tokenize.sample import count_table, merge_counts, plan_sample, sample_table

    params = BbpeParams.model_validate(meta["params"])
    tables = [pq.read_table(p) for p in parts]
    available = merge_counts([count_table(t) for t in tables])
    weights, weighting = params.weights_for([s for s, c in available.items() if c["bytes"] > 0])
    plan = plan_sample(available, weights, params.sample_bytes, params.max_epochs, params.max_share_ratio, weighting)
    sample = pa.concat_tables([sample_table(t, plan["fractions"], meta["sample"]["seed"]) for t in tables])
    texts, repeats = sample["text"].to_pylist(), sample["repeat"].to_pylist()
    assert sum(len(t.encode()) * r for t, r in zip(texts, repeats)) == meta["sample"]["bytes"]
    from gristmill.stages.lang.fasttext_model import default_lid_model, load_model

    labels, _ = load_model(default_lid_model()).predict([" ".join(t.split())[:2000] for t in texts])
    mb: dict[str, float] = {}
    for text, repeat, label in zip(texts, repeats, labels):
        lang = label[0].removeprefix("__label__")
        mb[lang] = mb.get(lang, 0.0) + len(text.encode()) * repeat / 1e6
    return mb


def doc_html_curve(args: argparse.Namespace) -> None:
    """The step's defaults at the GPT-2 vocabulary on the llama-web corpus plus growing amounts of installed
    documentation HTML (``--doc-html``) as ``common_crawl`` pages: held-out bytes/token vs English MB trained on."""
    from tokenizers import Tokenizer

    corpus, held = load_llama_web(args.data, args.code, args.code_mb)
    docs, pages = load_doc_html(args.doc_html)
    english = _is_english(docs)
    print(f"documentation HTML: {pages} pages with text, {len(docs)} distinct, "
          f"{sum(len(d.encode()) for d in docs) / 1e6:.2f} MB of text, "
          f"{sum(len(d.encode()) for d, en in zip(docs, english) if en) / 1e6:.2f} MB English (lid.176)"
          + ("; only the English pages are added" if args.doc_english_only else "") + "\n")
    if args.doc_english_only:
        docs = [d for d, en in zip(docs, english) if en]
    doc_mb = sum(len(d.encode()) for d in docs) / 1e6
    gpt2 = gpt2_tokenizer(args.data)
    base = {label: bytes_per_token(gpt2, d) for label, d in held.items()}
    vocab = max(args.vocab)
    print(f"Defaults, vocabulary {vocab}; held-out bytes/token (x = ratio to GPT-2):\n")
    print("| doc HTML added MB | sample MB | English in sample MB | zh in sample MB | vocabulary reached | "
          + " | ".join(held) + " |")
    print("|---:|---:|---:|---:|---:|" + "---:|" * len(held))
    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp:
        for mb in args.doc_mb:
            added = take_mb(docs, mb if mb >= 0 else doc_mb + 1)
            run_dir = os.path.join(tmp, f"docs-{mb}")
            os.makedirs(run_dir)
            parts = write_parts({**corpus, "common_crawl": corpus["common_crawl"] + added}, run_dir)
            r = train_in_child(parts, run_dir, {"vocab_size": vocab, "sample_bytes": int(args.sample_mb * 1e6)})
            langs = sample_language_mb(parts, r["meta"])
            tok = Tokenizer.from_file(os.path.join(run_dir, "tokenizer", "tokenizer.json"))
            cells = [f"{(v := bytes_per_token(tok, d)):.2f} ({v / base[label]:.2f}x)" for label, d in held.items()]
            print(f"| {sum(len(d.encode()) for d in added) / 1e6:.2f} | {r['sample_bytes'] / 1e6:.2f} | "
                  f"{langs.get('en', 0):.2f} | {langs.get('zh', 0):.2f} | {r['meta']['vocab_size']} | "
                  + " | ".join(cells) + " |", flush=True)
    print("| GPT-2 | | | | 50257 | " + " | ".join(f"{v:.2f}" for v in base.values()) + " |")


def llama_web(args: argparse.Namespace) -> None:
    """Train on the LLaMA-style web corpus with the step's defaults and with the old bytes-present weighting."""
    from tokenizers import Tokenizer

    corpus, held = load_llama_web(args.data, args.code, args.code_mb)
    print("corpus (available): " + ", ".join(f"{s} {sum(len(d.encode()) for d in docs) / 1e6:.2f} MB "
                                             f"({len(docs)} docs)" for s, docs in corpus.items()))
    web = held["English web (held-out articles)"]
    print(f"held-out English web text: {shingle_overlap(web, corpus['c4'] + corpus['common_crawl']):.2%} of its "
          "8-word shingles occur in the training text\n")
    variants = {"defaults": {}, "one stage (superword_share 0)": {"superword_share": 0},
                "bytes present": {"default_mixture": None, "max_share_ratio": None}}
    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp:
        parts = write_parts(corpus, tmp)
        tokenizers, metas, paths = {}, {}, {}
        for vocab in args.vocab:
            for label, overrides in variants.items():
                run_dir = os.path.join(tmp, f"run-{vocab}-{len(metas)}")
                r = train_in_child(parts, run_dir, {"vocab_size": vocab, "sample_bytes": int(args.sample_mb * 1e6),
                                                    **overrides})
                name = f"gristmill {vocab}, {label}"
                tokenizers[name] = Tokenizer.from_file(os.path.join(run_dir, "tokenizer", "tokenizer.json"))
                paths[name] = os.path.join(run_dir, "tokenizer", "tokenizer.json")
                metas[name] = r["meta"]
                print(f"{name}: step wall {r['wall']:.1f} s, step CPU {r['cpu']:.1f} s, trainer {r['train']:.1f} s, "
                      f"vocabulary {r['meta']['vocab_size']} (first stage {r['meta']['first_stage_vocab_size']}, "
                      f"superword merges {r['meta']['superword_merges']}), "
                      f"weighting: {r['meta']['sample']['weighting']}", flush=True)
        print("\nTraining sample per source, MB (share of the sample; target share):\n")
        sources = sorted(corpus)
        print("| tokenizer | sample MB | " + " | ".join(sources) + " |")
        print("|---|---:|" + "---|" * len(sources))
        for name, meta in metas.items():
            cells = []
            for source in sources:
                got = meta["sample"]["sources"].get(source, {})
                cells.append(f"{got.get('bytes', 0) / 1e6:.2f} ({got.get('share', 0):.1%}; "
                             f"{got.get('target_share', 0):.1%})")
            print(f"| {name} | {meta['sample']['bytes'] / 1e6:.2f} | " + " | ".join(cells) + " |")

        gpt2 = gpt2_tokenizer(args.data)
        if args.english_fractions:
            english_scaling(corpus, held, gpt2, args.english_fractions, max(args.vocab), tmp)
        print("\nHeld-out bytes per token (higher is better; x = ratio to GPT-2):\n")
        names = list(tokenizers)
        print("| held-out set | MB | docs | GPT-2 50257 | " + " | ".join(names) + " |")
        print("|---|---:|---:|---:|" + "---:|" * len(names))
        for label, docs in held.items():
            base = bytes_per_token(gpt2, docs)
            cells = [f"{(v := bytes_per_token(tokenizers[n], docs)):.2f} ({v / base:.2f}x)" for n in names]
            print(f"| {label} | {sum(len(d.encode()) for d in docs) / 1e6:.2f} | {len(docs)} | {base:.2f} | "
                  + " | ".join(cells) + " |")
        docs = [d for texts in (*held.values(), corpus["c4"], corpus["common_crawl"]) for d in texts]
        encode_cpu({n: p for n, p in paths.items() if "bytes present" not in n}, docs, args.repeats)


def encode_cpu(paths: dict[str, str], docs: list[str], repeats: int) -> None:
    """CPU seconds of the tokenize stage's process() per tokenizer and engine, best of ``repeats``, one thread
    each (tiktoken's thread pool off; tokenizers' CPU time counts all its threads)."""
    from gristmill.stages.tokenize.encode import TokenizeBbpeV1

    table = pa.table({"doc_id": pa.array(range(len(docs)), pa.uint64()), "text": pa.array(docs, pa.large_string())})
    mb = sum(len(d.encode()) for d in docs) / 1e6
    stages = {}
    for name, path in paths.items():
        for engine in ("tiktoken", "tokenizers"):
            stages[name, engine] = TokenizeBbpeV1({"path": path, "engine": engine})
            stages[name, engine].setup()
            if engine == "tiktoken":
                stages[name, engine].encode.threads = 1
    best, tokens = {key: float("inf") for key in stages}, {}
    for _ in range(repeats):  # interleaved, so drift hits every variant alike
        for key, stage in stages.items():
            cpu = time.process_time()
            out = stage.process(table)
            best[key] = min(best[key], time.process_time() - cpu)
            tokens[key] = pc.sum(out.table["n_tokens"]).as_py()
    print(f"\nEncode CPU, tokenize stage, {mb:.2f} MB (held-out sets, c4, common_crawl), best of {repeats}:\n")
    print("| tokenizer | engine | CPU s | MB per CPU-second | tokens |")
    print("|---|---|---:|---:|---:|")
    for (name, engine), cpu in best.items():
        print(f"| {name} | {engine} | {cpu:.2f} | {mb / cpu:.2f} | {tokens[name, engine]:,} |")


# Each lever alone, as step params (and, for one, a corpus with common_crawl cut to English and Chinese).
_WORD = r"[^\r\n\p{L}\p{N}]?\p{L}+"


def _lever_params() -> dict[str, tuple[dict, bool]]:
    """Label -> (step params over the defaults, whether common_crawl is cut to English and Chinese)."""
    from gristmill.stages.tokenize.bbpe import SPLIT_REGEX

    words_only = SPLIT_REGEX.replace(_WORD, _WORD + r"(?: \p{L}+)*", 1)
    across_sentences = SPLIT_REGEX.replace(_WORD, _WORD + r"(?:[,;:.!?]? \p{L}+)*", 1)
    one = {"superword_share": 0}
    return {
        "one stage (the previous default)": (one, False),
        "one stage, min_frequency 1": ({**one, "min_frequency": 1}, False),
        "one stage, numbers in runs of 1-3 digits": (
            {**one, "split_regex": SPLIT_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|", 1), "individual_digits": False},
            False),
        "one stage, common_crawl English + Chinese only": (one, True),
        "two stages, superword_share 0.2": ({"superword_share": 0.2}, False),
        "two stages, superword_share 0.4 (default)": ({}, False),
        "two stages, superword_share 0.6": ({"superword_share": 0.6}, False),
        "two stages, pieces over spaces only (no , ; :)": ({"superword_regex": words_only}, False),
        "two stages, pieces across sentences too (. ! ?)": ({"superword_regex": across_sentences}, False),
        "two stages, min_frequency 3": ({"min_frequency": 3}, False),
        "two stages, common_crawl English + Chinese only": ({}, True),
    }


def levers(args: argparse.Namespace) -> None:
    """Held-out bytes/token at the GPT-2 vocabulary for each lever of ``_lever_params`` alone."""
    from tokenizers import Tokenizer

    corpus, held = load_llama_web(args.data, args.code, args.code_mb)
    crawl = corpus["common_crawl"]
    keep = [en or any("\u4e00" <= c <= "\u9fff" for c in doc[:200]) for doc, en in zip(crawl, _is_english(crawl))]
    narrowed = {**corpus, "common_crawl": [doc for doc, k in zip(crawl, keep) if k]}
    gpt2 = gpt2_tokenizer(args.data)
    base = {label: bytes_per_token(gpt2, docs) for label, docs in held.items()}
    vocab = max(args.vocab)
    print(f"Levers one at a time, vocabulary {vocab}; held-out bytes/token (x = ratio to GPT-2):\n")
    print("| lever | sample MB | vocabulary (first stage) | step CPU s | " + " | ".join(held) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(held))
    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp:
        for i, (label, (overrides, english_crawl)) in enumerate(_lever_params().items()):
            run_dir = os.path.join(tmp, f"lever-{i}")
            os.makedirs(run_dir)
            parts = write_parts(narrowed if english_crawl else corpus, run_dir)
            r = train_in_child(parts, run_dir, {"vocab_size": vocab, "sample_bytes": int(args.sample_mb * 1e6),
                                                **overrides})
            tok = Tokenizer.from_file(os.path.join(run_dir, "tokenizer", "tokenizer.json"))
            cells = [f"{(v := bytes_per_token(tok, d)):.2f} ({v / base[name]:.2f}x)" for name, d in held.items()]
            print(f"| {label} | {r['sample_bytes'] / 1e6:.2f} | {r['meta']['vocab_size']} "
                  f"({r['meta']['first_stage_vocab_size']}) | {r['cpu']:.1f} | " + " | ".join(cells) + " |", flush=True)
    print("| GPT-2 | | 50257 | | " + " | ".join(f"{v:.2f}" for v in base.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="MB of training text (default 50)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, GPT2_VOCAB])
    parser.add_argument("--encode-mb", type=float, default=8.0, help="MB of text for the throughput test")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus", choices=["code-heavy", "llama-web"], default="code-heavy",
                        help="code-heavy: issue 5's corpus; llama-web: web-like text under LLaMA source names")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="the shared data folder (default $GRISTMILL_SHARED_DATA or ../shared/data)")
    parser.add_argument("--code", default=sysconfig.get_paths()["stdlib"],
                        help="a folder of .py files for the code source (default: this Python's standard library)")
    parser.add_argument("--code-mb", type=float, default=10.0, help="llama-web: MB of code available (default 10)")
    parser.add_argument("--sample-mb", type=float, default=1000.0,
                        help="llama-web: the step's sample_bytes in MB (default 1000, its own default)")
    parser.add_argument("--english-fractions", type=float, nargs="*", default=[],
                        help="llama-web: also train on these fractions of the English training text alone")
    parser.add_argument("--doc-html", nargs="*", default=[],
                        help="llama-web: folders of installed documentation HTML (e.g. /usr/share/doc/debian-handbook)"
                             " added to common_crawl in growing amounts, --doc-mb")
    parser.add_argument("--doc-mb", type=float, nargs="*", default=[0, 2, 4, 8, 16, -1],
                        help="llama-web with --doc-html: MB of documentation text to add per run (-1: all)")
    parser.add_argument("--doc-english-only", action="store_true",
                        help="with --doc-html: add only the pages lid.176 calls English")
    parser.add_argument("--levers", action="store_true",
                        help="llama-web: each lever of the English gap alone (training stages, min_frequency, "
                             "digits, an English-and-Chinese common_crawl)")
    args = parser.parse_args()
    if args.corpus == "llama-web":
        if args.vocab == parser.get_default("vocab"):
            args.vocab = [GPT2_VOCAB]
        if args.levers:
            return levers(args)
        return doc_html_curve(args) if args.doc_html else llama_web(args)
    from tokenizers import Tokenizer

    corpus, held = load_corpus(args.mb, args.data, args.code)
    cores = int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count())
    print("corpus: " + ", ".join(f"{s} {sum(len(d.encode()) for d in docs) / 1e6:.1f} MB ({len(docs)} docs)"
                                   for s, docs in corpus.items()) + f"; {cores} cores\n")
    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp:
        parts = write_parts(corpus, tmp)
        trained = {}
        print("| vocab | sample MB | trainer wall s | step wall s (count+sample+train+save) | step CPU s | "
              "peak RSS MiB | RSS at start MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for vocab in args.vocab:
            out = os.path.join(tmp, f"tok-{vocab}")
            r = train_in_child(parts, out, {"vocab_size": vocab, "sample_bytes": 10**12})
            trained[vocab] = os.path.join(out, "tokenizer", "tokenizer.json")
            print(f"| {vocab} | {r['sample_bytes'] / 1e6:.1f} | {r['train']:.1f} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                  f"{r['peak_mib']:.0f} | {r['start_mib']:.0f} |")

        print("\nCompression on held-out text, bytes per token (higher is better):\n")
        tokenizers = {f"gristmill {v}": Tokenizer.from_file(p) for v, p in trained.items()}
        tokenizers[f"GPT-2 {GPT2_VOCAB}"] = gpt2_tokenizer(args.data)
        names = list(tokenizers)
        print("| held-out set | MB | " + " | ".join(names) + " |")
        print("|---|---:|" + "---:|" * len(names))
        for label, docs in held.items():
            cells = [f"{bytes_per_token(tokenizers[n], docs):.2f}" for n in names]
            print(f"| {label} | {sum(len(d.encode()) for d in docs) / 1e6:.2f} | " + " | ".join(cells) + " |")

        mixed = [d for docs in (*held.values(), corpus["text"], corpus["code"], corpus["html"]) for d in docs]
        sample, size = [], 0
        for doc in mixed:
            if size >= args.encode_mb * 1e6:
                break
            sample.append(doc)
            size += len(doc.encode())
        vocab = GPT2_VOCAB if GPT2_VOCAB in trained else args.vocab[-1]
        best = throughput(trained[vocab], sample, args.repeats)
        print(f"\nEncode throughput, {size / 1e6:.1f} MB ({len(sample)} docs), vocab {vocab}, best of "
              f"{args.repeats}, {cores} threads:\n")
        print("| path | wall s | CPU s | MB/s (wall) | MB per CPU-second (per core) | CPU vs bare encode_batch |")
        print("|---|---:|---:|---:|---:|---:|")
        base = best["bare encode_batch"][1]
        for name, (wall, cpu) in best.items():
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {size / 1e6 / wall:.2f} | {size / 1e6 / cpu:.2f} | "
                  f"{cpu / base - 1:+.1%} |")

if __name__ == "__main__":
    main()

"""The crawl pipeline per stage: the CPU of each gristmill stage against the bare library calls it wraps, on the
pages of the crawl corpus of ``benchmarks/crawl_peer.py`` (WARCs built from the shared data's HTML pages).

    python benchmarks/crawl_stages.py [--data DIR] [--copies 2] [--extractor trafilatura] [--repeat 3]

In this process, one thread, least CPU (``time.process_time``) of ``--repeat`` passes, after one warm-up pass
(set-up costs, such as loading the compiled kernels, are shown on their own):

* ingest: ``WarcReader`` minus its extractor's calls (record loop, checks, HTTP charset, decoding, batching)
  against fastwarc's ``ArchiveIterator(parse_http=True)``, the payload read and ``bytes.decode`` of every HTML
  response: that loop alone, and the same loop calling the extractor on every page as the reader does (its CPU
  left out on both sides), which is the loop in the reader's conditions (an extraction between two records
  leaves the caches and the allocator in another state: the bare loop alone is ~1.5x faster than with
  trafilatura between its records). A third figure is the reader with an extractor that does nothing: the
  reader's own work over the loop's, without the extractor's effect on the caches.
* extract: the extractor as the reader calls it (``stages/ingest/html.py``) against ``trafilatura.extract`` /
  resiliparse's parse + ``extract_plain_text`` with the same options on the same strings.
* clean.normalize_v1, clean.boilerplate_v1, clean.pii_v1: ``process()`` per batch against the RE2 / Arrow
  compute passes (and ftfy calls) the rules need, on the same batches without the stage around them.
* lang.fasttext_v1: ``process()`` against fastText's native ``multilinePredict`` on the same 2,000-character
  prefixes (made in Python).
* quality.heuristics_v1: ``process()`` against ``signals.compute`` (its compiled kernels and Arrow passes).
* filter: ``process()`` of the LID filter and of the Gopher presets, and the runner's split of the kept rows,
  against the same predicate with ``pyarrow.compute``, one ``if_else`` for a drop reason per row (one reason for
  all: a lower bound of the per-clause reasons the step gives) and ``Table.filter``.

The batches are those the reader yields (one per WARC file here); clean stages run on the extracted text as it
comes out of the reader, LID and heuristics on what normalize leaves.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from process_tree import least_cpu
from shared_data import SHARED_DATA


def cpu_of(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


# --- ingest and extraction -----------------------------------------------------------------------------------


class TimedExtractor:
    """Wraps the reader's extractor and adds up the CPU of its calls. It keeps nothing: holding every page's HTML
    (160 KB on average) would make each decode allocate fresh memory (a page fault per 4 KiB page) that the bare
    loop, which frees its strings, never pays; the inputs are collected in a pass of their own
    (``extractor_inputs``)."""

    def __init__(self, extract):
        self.extract, self.cpu = extract, 0.0

    def __call__(self, html: str, url: str | None = None) -> str:
        t = time.process_time()
        out = self.extract(html, url)
        self.cpu += time.process_time() - t
        return out


def read_warcs(paths: list[str], extractor: str) -> tuple[list[pa.Table], float, float]:
    """The reader's tables, its CPU without the extractor, the extractor's CPU."""
    from gristmill.stages.ingest import html as html_mod
    from gristmill.stages.ingest.base import Limits, Unit
    from gristmill.stages.ingest.warc import WarcOptions, WarcReader

    reader = WarcReader(WarcOptions(extractor=extractor), Limits())
    timed = TimedExtractor(html_mod.make_extractor(reader.options))
    reader._extract = timed
    t = time.process_time()
    tables = [table for i, path in enumerate(paths) for table in reader.read(Unit(i, (path,)))]
    total = time.process_time() - t
    return tables, total - timed.cpu, timed.cpu


def read_warcs_without_extraction(paths: list[str]) -> float:
    """The reader's CPU with an extractor that returns a fixed text: its record loop, checks, decoding and
    batching alone."""
    from gristmill.stages.ingest.base import Limits, Unit
    from gristmill.stages.ingest.warc import WarcOptions, WarcReader

    reader = WarcReader(WarcOptions(), Limits())
    reader._extract = lambda html, url: "text"
    t = time.process_time()
    for i, path in enumerate(paths):
        for _ in reader.read(Unit(i, (path,))):
            pass
    return time.process_time() - t


def make_extractor(name: str) -> Callable[[str, str | None], str]:
    """The extractor as the reader builds it."""
    from gristmill.stages.ingest import html as html_mod
    from gristmill.stages.ingest.warc import WarcOptions

    return html_mod.make_extractor(WarcOptions(extractor=name))


def extractor_inputs(paths: list[str]) -> list[tuple[str, str | None]]:
    """The (HTML, URL) of every extractor call of the reader, from a pass that extracts nothing."""
    from gristmill.stages.ingest.base import Limits, Unit
    from gristmill.stages.ingest.warc import WarcOptions, WarcReader

    calls = []
    reader = WarcReader(WarcOptions(), Limits())
    reader._extract = lambda html, url: calls.append((html, url)) or ""
    for i, path in enumerate(paths):
        for _ in reader.read(Unit(i, (path,))):
            pass
    return calls


def bare_warc(paths: list[str], between: Callable[[str, str | None], object] | None = None) -> float:
    """CPU of fastwarc's record loop with HTTP headers parsed, every HTML response's payload read and decoded.
    ``between``: called on every decoded page as the reader calls its extractor, its CPU left out (as the
    reader's row leaves the extractor's out), so that the loop runs in the same conditions: caches and
    allocator state after an extraction."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    outside = 0.0
    start = time.process_time()
    for path in paths:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
                if "html" in (record.http_content_type or ""):
                    html = record.reader.read().decode(record.http_charset or "utf-8", "replace")
                    if between is not None:
                        t = time.process_time()
                        between(html, record.headers.get("WARC-Target-URI"))
                        outside += time.process_time() - t
    return time.process_time() - start - outside


def least(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def bare_extractor(name: str) -> Callable[[str, str | None], str]:
    if name == "trafilatura":
        import trafilatura

        return lambda html, url: trafilatura.extract(
            html, url=url, favor_recall=False, include_comments=False, include_links=False, include_images=False,
            include_tables=True, deduplicate=False, with_metadata=False, fast=False) or ""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return lambda html, url: extract_plain_text(
        HTMLTree.parse(html), preserve_formatting=True, main_content=True, list_bullets=True, alt_texts=False,
        links=False, comments=False)


# --- the bare calls of each stage ------------------------------------------------------------------------------


def bare_normalize(text: pa.Array) -> None:
    """Normalize's library calls: its four RE2 pre-checks over the batch, ftfy / ``utf8_normalize`` / the RE2
    rewrites on the rows they flag."""
    from gristmill.stages.clean import normalize as n

    flagged = pc.match_substring_regex(text, n.mojibake_pattern())
    if pc.any(flagged).as_py():
        fix = n._ftfy_fixer()
        [fix(s) for s in text.filter(flagged).to_pylist()]
    flagged = pc.match_substring_regex(text, n.unstable_chars_pattern("NFC"))
    if pc.any(flagged).as_py():
        pc.utf8_normalize(text.filter(flagged), form="NFC")
    flagged = pc.match_substring_regex(text, n.NEEDS_CONTROL_PASS)
    if pc.any(flagged).as_py():
        pc.replace_substring_regex(pc.replace_substring_regex(text.filter(flagged), n.LINE_BREAKS, "\n"),
                                   n.CONTROL_CHARS, "")
    flagged = pc.match_substring_regex(text, n.NEEDS_WHITESPACE_PASS)
    if pc.any(flagged).as_py():
        n.clean_whitespace(text.filter(flagged))


def bare_boilerplate(text: pa.Array) -> None:
    """C4's line rules as the Arrow calls they need: split into lines, strip, the cheap tests on every line, the
    regex tests on the lines still kept, the document tests, join the kept lines per document."""
    from gristmill.stages.clean.boilerplate import C4_POLICY_PHRASES, CJK_ANY, CJK_CHAR, NON_CJK_WORD

    lines = pc.split_pattern(text, "\n")
    flat = pc.utf8_trim_whitespace(lines.flatten())
    last = pc.utf8_slice_codeunits(flat, start=-1)
    keep = pc.and_(pc.is_in(last, value_set=pa.array(list('.!?"…。！？．”」』।؟'), pa.large_string())),
                   pc.invert(pc.or_(pc.ends_with(flat, "..."), pc.ends_with(flat, "…"))))
    keep = pc.fill_null(keep, False)
    candidates = flat.filter(keep)
    pc.match_substring_regex(candidates, "|".join(["javascript", *C4_POLICY_PHRASES]), ignore_case=True)
    cjk = pc.match_substring_regex(candidates, CJK_ANY)
    pc.match_substring_regex(candidates, r"\S+\s+\S+\s+\S+")
    if pc.any(cjk).as_py():  # words of unspaced scripts are counted, not matched
        cjk_lines = candidates.filter(cjk)
        pc.count_substring_regex(cjk_lines, NON_CJK_WORD)
        pc.count_substring_regex(cjk_lines, CJK_CHAR)
    pc.greater(pc.utf8_length(candidates), 1000)
    pc.match_substring(text, "lorem ipsum", ignore_case=True)
    counts = pc.list_value_length(pc.split_pattern(text, "\n"))  # stands in for the per-document kept count
    offsets = np.concatenate([[0], np.cumsum(counts.to_numpy(zero_copy_only=False))])
    pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), flat),
                   pa.scalar("\n", pa.large_string()))


def bare_pii(text: pa.Array) -> None:
    """PII's library calls: one RE2 pass over the batch for every kind at once, then per kind a match on the
    rows it flags and the two replacement passes on the rows with a match."""
    from gristmill.stages.clean import pii

    kinds = [(pii.EMAIL, "@"), (pii.IPV6, pii.IPV6), (pii.IPV4, pii.IPV4), (pii.PHONE, pii.PHONE)]
    flagged = pc.match_substring_regex(text, "|".join(f"(?:{cue})" for _, cue in kinds))
    rows = text.filter(flagged)
    for pattern, cue in kinds:
        hit = rows.filter(pc.match_substring_regex(rows, cue))
        once = pc.replace_substring_regex(hit, pattern, pii.rewrite("<X>"))
        pc.replace_substring_regex(once, pattern, pii.rewrite("<X>"))


def stage_rows(batches: list[pa.Table], repeat: int) -> list[tuple[str, float, float, float]]:
    """(stage, set-up CPU, stage CPU, bare CPU) of the clean, LID, heuristics and filter stages."""
    from gristmill.stages.clean.boilerplate import Boilerplate
    from gristmill.stages.clean.normalize import Normalize
    from gristmill.stages.clean.pii import Pii
    from gristmill.stages.filter import Filter
    from gristmill.stages.lang.fasttext_lid import FastTextLangId
    from gristmill.stages.quality import signals
    from gristmill.stages.quality.heuristics import QualityHeuristics
    from gristmill.stages.quality.presets import GOPHER, GOPHER_REPETITION

    rows = []

    def stage_row(label, stage, inputs, bare_fn):
        _, setup = cpu_of(stage.setup)
        outputs = [kept(stage.process(b)) for b in inputs]  # warm-up
        cpu = least_cpu(lambda: [kept(stage.process(b)) for b in inputs], repeat)[1]
        bare_cpu = least_cpu(lambda: [bare_fn(b) for b in inputs], repeat)[1]
        rows.append((label, setup, cpu, bare_cpu))
        return outputs

    def kept(out):
        """What the runner passes on: the rows without a reject reason."""
        return out.table if out.reject_reason is None else out.table.filter(pc.is_null(out.reject_reason))

    texts = lambda table: table["text"].combine_chunks()  # noqa: E731
    normalized = stage_row("clean.normalize_v1", Normalize({}), batches, lambda b: bare_normalize(texts(b)))
    stage_row("clean.boilerplate_v1", Boilerplate({}), batches, lambda b: bare_boilerplate(texts(b)))
    stage_row("clean.pii_v1", Pii({}), batches, lambda b: bare_pii(texts(b)))

    lid = FastTextLangId({"default_threshold": 0.65})
    lid.setup()
    native = lid.model.f

    def bare_lid(b):
        prefixes = [t[:4000].replace("\n", " ")[:2000] + "\n" for t in b["text"].to_pylist()]
        native.multilinePredict(prefixes, 1, 0.0, "replace")

    with_lang = stage_row("lang.fasttext_v1", lid, normalized, bare_lid)
    with_q = stage_row("quality.heuristics_v1", QualityHeuristics({}), with_lang,
                       lambda b: signals.compute(b["text"]))

    dropped = pa.scalar("dropped", pa.string())

    def bare_filter(expression):
        def run(b):
            mask = pc.fill_null(expression(b), False)
            pc.if_else(mask, pa.scalar(None, pa.string()), dropped)  # a drop reason per row, as a step owes
            return b.filter(mask)
        return run

    stage_row("filter {col: lang_pass, eq: true}", Filter({"expr": {"col": "lang_pass", "eq": True}}), with_q,
              bare_filter(lambda b: pc.equal(b["lang_pass"], True)))

    ops = {"ge": pc.greater_equal, "le": pc.less_equal}

    def gopher_mask(b):
        mask = None
        for clause in GOPHER_REPETITION["all"] + GOPHER["all"]:
            (op, value), = [(k, v) for k, v in clause.items() if k != "col"]
            m = ops[op](b[clause["col"]], value)
            mask = m if mask is None else pc.and_kleene(mask, m)
        return mask

    stage_row("filter gopher_repetition + gopher", Filter(
        {"expr": {"all": [{"preset": "gopher_repetition"}, {"preset": "gopher"}]}}), with_q,
        bare_filter(gopher_mask))

    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--warc-mb", type=float, default=2.3)
    ap.add_argument("--extractor", choices=["trafilatura", "resiliparse"], default="trafilatura")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import crawl_peer

    rows: list[tuple[str, float, float, float]] = []  # stage, set-up CPU, stage CPU, bare CPU
    with tempfile.TemporaryDirectory(prefix="crawl-stages-") as tmp:
        corpus = crawl_peer.build_warcs(args.data, Path(tmp) / "warcs", args.copies, args.warc_mb)
        paths = sorted(str(p) for p in (Path(tmp) / "warcs").glob("*.warc.gz"))
        read_warcs(paths[:1], args.extractor)  # imports and first calls
        best = None
        for _ in range(args.repeat):
            run = read_warcs(paths, args.extractor)
            best = run if best is None or run[1] + run[2] < best[1] + best[2] else best
        tables, ingest_cpu, extract_cpu = best
        bare_ingest = least(lambda: bare_warc(paths), args.repeat)
        bare = bare_extractor(args.extractor)
        as_the_reader = make_extractor(args.extractor)
        bare_ingest_between = least(lambda: bare_warc(paths, as_the_reader), args.repeat)
        ingest_alone = least(lambda: read_warcs_without_extraction(paths), args.repeat)
        calls = extractor_inputs(paths)
        bare_extract = least_cpu(lambda: [bare(h, u) for h, u in calls], 1 if args.extractor == "trafilatura"
                                 else args.repeat)[1]
        rows += [("ingest (WARC records -> decoded HTML)", 0.0, ingest_cpu, bare_ingest),
                 ("ingest, the bare loop with the extractor between records", 0.0, ingest_cpu,
                  bare_ingest_between),
                 ("ingest with an extractor that does nothing, against the bare loop alone", 0.0, ingest_alone,
                  bare_ingest),
                 (f"extract ({args.extractor})", 0.0, extract_cpu, bare_extract)]

    batches = []
    for table in tables:
        kept = table.filter(pc.is_null(table["reject_reason"]))
        text = kept["text"].combine_chunks().cast(pa.large_string())
        batches.append(pa.table({"source": pa.array(["common_crawl"] * len(text)), "text": text}))
    mb = sum(pc.sum(pc.binary_length(b["text"])).as_py() or 0 for b in batches) / 1e6

    rows += stage_rows(batches, args.repeat)

    print(f"{corpus['files']} WARC files, {corpus['pages']:,} pages, {corpus['html_mb']:.1f} MB of HTML -> "
          f"{sum(b.num_rows for b in batches):,} documents, {mb:.2f} MB of text; {len(batches)} batches; "
          f"least CPU of {args.repeat} passes, one thread\n")
    print("| stage | set-up CPU s (once a process) | stage CPU s | bare library calls CPU s | stage / bare |")
    print("|---|---:|---:|---:|---:|")
    for label, setup, cpu, bare_cpu in rows:
        print(f"| {label} | {setup:.3f} | {cpu:.3f} | {bare_cpu:.3f} | {cpu / bare_cpu:.2f}x |")


if __name__ == "__main__":
    main()

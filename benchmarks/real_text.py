"""Real documents for the language / quality benchmarks, read from ../shared/data ($GRISTMILL_SHARED_DATA) (never from the network).

* ``html_pages``: the 181 article pages of scrapinghub/article-extraction-benchmark, extracted with resiliparse
  (main content, and the whole page with navigation: the crawl-like version), plus their hand-labelled article text.
* ``langid_documents``: the Leipzig sentences of ../shared/data/langid joined into documents per language.
* ``warc_pages``: the HTML responses of the Common Crawl sample WARC, extracted with resiliparse.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from shared_data import SHARED_DATA  # noqa: E402

DATA = SHARED_DATA


def _extract(html: str, main_content: bool) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), preserve_formatting=True, main_content=main_content,
                              list_bullets=True, alt_texts=False, links=False, comments=False)


def html_pages() -> list[dict]:
    """One record per page: id, article (hand-labelled), main (resiliparse main content), page (whole page)."""
    truth = json.loads((DATA / "html" / "ground-truth.json").read_text())
    pages = []
    for path in sorted((DATA / "html" / "html").glob("*.html.gz")):
        page_id = path.name.split(".")[0]
        html = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        pages.append({
            "id": page_id,
            "url": truth.get(page_id, {}).get("url"),
            "article": truth.get(page_id, {}).get("articleBody", ""),
            "main": _extract(html, True),
            "page": _extract(html, False),
        })
    return pages


def langid_sentences() -> dict[str, list[str]]:
    return {p.stem: p.read_text(encoding="utf-8").splitlines() for p in sorted((DATA / "langid").glob("*.txt"))}


def langid_documents(sentences_per_doc: int = 20) -> list[dict]:
    docs = []
    for lang, sentences in langid_sentences().items():
        for i in range(0, len(sentences), sentences_per_doc):
            docs.append({"lang": lang, "text": " ".join(sentences[i:i + sentences_per_doc])})
    return docs


def warc_pages(name: str = "cc-main-2020-34-sample.warc.gz") -> list[dict]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    pages = []
    with open(DATA / "warc" / name, "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
            body = record.reader.read()
            if b"html" not in (record.http_headers.get("Content-Type") or "").encode():
                continue
            html = bytes_to_str(body, detect_encoding(body))
            pages.append({"url": record.headers.get("WARC-Target-URI"), "text": _extract(html, True),
                          "page": _extract(html, False)})
    return pages


def _chunks(text: str, size: int = 600, min_size: int = 200) -> list[str]:
    """Consecutive non-blank lines grouped into documents of at least ``size`` characters."""
    out, current = [], ""
    for line in text.split("\n"):
        if not line.strip():
            continue
        current = f"{current}\n{line}" if current else line
        if len(current) >= size:
            out.append(current)
            current = ""
    if len(current) >= min_size:
        out.append(current)
    return out


def reference_vs_crawl(pages: list[dict]) -> list[dict]:
    """Quality-classifier data from the article pages: the hand-labelled article text ('reference') and the
    rest of the whole-page extraction, i.e. navigation, teasers, footers ('common_crawl'), both cut into
    ~600-character documents. (tests/data/quality/articles-vs-boilerplate.parquet = this on the first 80 pages.)"""
    rows = []
    for page in pages:
        article_lines = {line.strip() for line in page["article"].split("\n") if line.strip()}
        boilerplate = "\n".join(
            line for line in page["page"].split("\n")
            if line.strip() and line.strip() not in article_lines
            and not any(line.strip() in a for a in article_lines if len(line.strip()) > 40))
        rows += [{"source": "reference", "text": c, "url": page["url"]} for c in _chunks(page["article"])]
        rows += [{"source": "common_crawl", "text": c, "url": page["url"]} for c in _chunks(boilerplate)]
    return rows


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) of one call: per-core cost that the machine's load barely moves."""
    start, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - start, time.thread_time() - cpu

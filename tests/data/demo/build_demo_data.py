"""Rebuild the demo's data files in this directory from their published origins (see ../README.md, "Demo data").

Run once by hand, never by the tests (the outputs are committed). Inputs:

    apt-get update && cd /tmp/demo-src && apt-get download debian-faq=11.1 dict-foldoc=20230119-1 \\
        debian-handbook=11.20220922 python3.11-doc=3.11.2-6+deb12u9 texlive-publishers-doc=2022.20230122-4
    # (Debian 12 "bookworm" main; the html dir is scrapinghub/article-extraction-benchmark's html/ folder)
    for d in *.deb; do mkdir -p x/${d%%_*} && dpkg -x $d x/${d%%_*}; done
    python tests/data/demo/build_demo_data.py /tmp/demo-src/x ../shared/data/html

The text is the packages' own; what this script changes is only the container (WARC/WET records, JSONL, Parquet
rows) and, where a format needs it, the layout: FOLDOC's dictd indentation and line wrapping become WET-style
one-paragraph-per-line text, and HTML becomes plain text via resiliparse.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import sys
import textwrap
import urllib.parse
import uuid
from pathlib import Path

OUT = Path(__file__).resolve().parent
WARC_DATE = "2019-11-20T00:00:00Z"  # the benchmark's pages were fetched in November 2019; the day is nominal


# --- WARC / WET writing (one gzip member per record, as Common Crawl does) --------------------------------------

def warc_record(headers: dict[str, str], body: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return gzip.compress(head.encode() + body + b"\r\n\r\n", mtime=0)


def record_id(key: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}>"


# --- common_crawl: real article pages as WARC response records ---------------------------------------------------

def web_pages(html_dir: Path, pages: int = 24, max_bytes: int = 40_000) -> None:
    """The pages of scrapinghub/article-extraction-benchmark with the most article text per stored byte
    (pages under ``max_bytes`` gzipped, at least 2,400 characters of article text)."""
    truth = json.loads((html_dir / "ground-truth.json").read_text(encoding="utf-8"))
    ranked = []
    for key, item in truth.items():
        path = html_dir / "html" / f"{key}.html.gz"
        body = item.get("articleBody", "")
        if path.exists() and len(body) >= 2400 and path.stat().st_size < max_bytes:
            ranked.append((-len(body) / path.stat().st_size, key, item["url"]))
    chosen = sorted(ranked)[:pages]
    with open(OUT / "web-pages.warc.gz", "wb") as out:
        for _, key, url in sorted(chosen, key=lambda r: r[2]):
            html = gzip.decompress((html_dir / "html" / f"{key}.html.gz").read_bytes())
            payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + \
                f"Content-Length: {len(html)}\r\n\r\n".encode() + html
            out.write(warc_record({
                "WARC-Type": "response", "WARC-Date": WARC_DATE, "WARC-Record-ID": record_id(url),
                "WARC-Target-URI": url, "Content-Type": "application/http; msgtype=response",
                "WARC-Payload-Digest": "sha1:" + hashlib.sha1(html).hexdigest(),
            }, payload))
    print(f"web-pages.warc.gz: {len(chosen)} pages")


# --- c4: English web text as C4-style JSONL ----------------------------------------------------------------------

def c4_records(corpus: Path, lines_per_doc: int = 10) -> None:
    lines = [l for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()]
    docs = [{"text": "\n".join(lines[i:i + lines_per_doc]), "id": f"corpus.en:{i + 1}"}
            for i in range(0, len(lines), lines_per_doc)]
    body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")
    (OUT / "c4-en.jsonl.gz").write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
    print(f"c4-en.jsonl.gz: {-(-len(lines) // lines_per_doc)} documents")


# --- wikipedia: FOLDOC entries as WET conversion records ---------------------------------------------------------

DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    value = 0
    for c in s:
        value = value * 64 + DICTD_B64.index(c)
    return value


def _paragraphs(body: str) -> str:
    """dictd layout (indented, wrapped at 65 columns) to one paragraph per line, as in WET."""
    paras = re.split(r"\n\s*\n", textwrap.dedent(body).strip())
    return "\n".join(" ".join(p.split()) for p in paras if p.strip())


def foldoc(root: Path, low: int = 3000, high: int = 6000, count: int = 40) -> None:
    dictd = root / "dict-foldoc/usr/share/dictd"
    data = gzip.decompress((dictd / "foldoc.dict.dz").read_bytes())  # dictzip is gzip with an index
    entries: dict[tuple[int, int], list[str]] = {}
    for line in (dictd / "foldoc.index").read_text(encoding="utf-8").splitlines():
        head, off, length = line.split("\t")
        entries.setdefault((_b64(off), _b64(length)), []).append(head)
    chosen = sorted(((l, o) for (o, l), heads in entries.items()
                     if low <= l < high and not heads[0].startswith("00-")), reverse=True)[:count]
    with open(OUT / "foldoc.warc.wet.gz", "wb") as out:
        for length, offset in sorted(chosen, key=lambda e: e[1]):
            raw = data[offset:offset + length].decode("utf-8")
            title, _, body = raw.partition("\n\n")
            title = title.splitlines()[0].split("%%%")[0].strip()  # the first of its headwords
            text = (title + "\n" + _paragraphs(body)).encode("utf-8")
            url = "https://foldoc.org/" + urllib.parse.quote_plus(title)
            out.write(warc_record({
                "WARC-Type": "conversion", "WARC-Target-URI": url, "WARC-Date": WARC_DATE,
                "WARC-Record-ID": record_id(url), "Content-Type": "text/plain",
                "WARC-Block-Digest": "sha1:" + hashlib.sha1(text).hexdigest(),
            }, text))
    print(f"foldoc.warc.wet.gz: {len(chosen)} entries")


# --- books: chapters of The Debian Administrator's Handbook as Parquet rows -------------------------------------

def _page_text(path: Path) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(path.read_text(encoding="utf-8"))
    node = tree.body.query_selector("div.chapter, div.preface, div.section")
    return extract_plain_text(node.html, main_content=False, preserve_formatting=True, alt_texts=False,
                              links=False, list_bullets=True)


def _toc(index: Path) -> list[tuple[str, str]]:
    """(kind, file) of each TOC entry, in book order, first appearance only."""
    found = re.findall(r'<span class="(chapter|section|preface|appendix)"><a href="([^"#]+)(?:#[^"]*)?">',
                       index.read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for kind, href in found:
        seen.setdefault(href, kind)
    return [(kind, href) for href, kind in seen.items()]


# Parts per language: 0 = the preface, n = chapter n.
HANDBOOK_PARTS = {"en-US": [0, 1, 2], "fr-FR": [1], "de-DE": [1]}


def handbook(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    html = root / "debian-handbook/usr/share/doc/debian-handbook/html"
    rows = []
    for lang, parts in HANDBOOK_PARTS.items():
        book: list[list[str]] = []  # the pages of each part, a chapter's sections after it
        for kind, href in _toc(html / lang / "index.html"):
            if kind in ("chapter", "appendix") or not book:
                book.append([])
            book[-1].append(href)
        for n in parts:
            pages = book[n]
            text = "\n\n".join(_page_text(html / lang / p) for p in pages)
            rows.append({"id": f"debian-handbook/{lang}/{pages[0].removesuffix('.html')}", "language": lang,
                         "url": f"https://debian-handbook.info/browse/{lang}/stable/{pages[0]}", "text": text})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("language", pa.string()),
                                                         ("url", pa.string()), ("text", pa.large_string())]))
    pq.write_table(table, OUT / "debian-handbook.parquet", compression="zstd", compression_level=19)
    print(f"debian-handbook.parquet: {len(rows)} chapters, {sum(len(r['text']) for r in rows)} chars")


# --- arxiv: LaTeX sources of TeX Live's sample articles, unmodified ----------------------------------------------

ARXIV = [
    "aomart/aomsample.tex",  # Annals of Mathematics sample, from amsmath's testmath.tex
    "ijmart/ijmsample.tex",  # Israel Journal of Mathematics sample, from the same testmath.tex
    "revtex4-1/sample/aps/apssamp.tex",  # APS Physical Review sample
    "jmlr/pmlr-sample.tex",  # Proceedings of Machine Learning Research sample
    "nwejm/examples/article-in-english.tex",
    "nwejm/examples/article-in-french.tex",
    # TeX Live ships this section of an EU proposal template twice, byte for byte: an exact duplicate pair.
    "h2020proposal/template-fet/ethics.tex",
    "h2020proposal/template-ict/ethics.tex",
]


def arxiv(root: Path) -> None:
    latex = root / "texlive-publishers-doc/usr/share/doc/texlive-doc/latex"
    dest = OUT / "arxiv"
    shutil.rmtree(dest, ignore_errors=True)
    for rel in ARXIV:
        src = latex / rel
        data = src.read_bytes() if src.exists() else gzip.decompress(Path(str(src) + ".gz").read_bytes())
        target = dest / rel  # TeX Live's doc/latex/ layout, so a file's origin names its package
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"arxiv/: {len(ARXIV)} .tex files")


# --- stackexchange: FAQ questions and answers as JSONL (zstd) ----------------------------------------------------

def _html_text(fragment: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(fragment, main_content=False, preserve_formatting=True, alt_texts=False,
                              links=False, list_bullets=True).strip()


def debian_faq(root: Path) -> list[dict]:
    faq = root / "debian-faq/usr/share/doc/debian/FAQ"
    heading = re.compile(r'<h([234]) class="title"><a id="([^"]+)"></a>(.*?)</h\1>', re.DOTALL)
    records = []
    index = (faq / "index.en.html").read_text(encoding="utf-8")
    chapters = list(dict.fromkeys(re.findall(r'href="([a-z-]+)\.en\.html"', index)))
    for chapter in chapters:
        page = (faq / f"{chapter}.en.html").read_text(encoding="utf-8")
        page = page.split('<div class="navfooter">')[0]
        parts = heading.split(page)
        for i in range(1, len(parts) - 3, 4):
            anchor, title_html, body_html = parts[i + 1], parts[i + 2], parts[i + 3]
            title = " ".join(_html_text(title_html).split())
            number, _, question = title.partition(" ")
            answer = _html_text(body_html)
            if not question.endswith("?") or len(answer.split()) < 20:
                continue
            records.append({
                "id": f"debian-faq/{number.rstrip('.')}", "question": question, "answer": answer,
                "url": f"https://www.debian.org/doc/manuals/debian-faq/{chapter}.en.html#{anchor}",
            })
    return records


def python_faq(root: Path, pages=("general", "programming", "library")) -> list[dict]:
    sources = root / "python3.11-doc/usr/share/doc/python3.11/html/_sources/faq"
    records = []
    for page in pages:
        lines = (sources / f"{page}.rst.txt").read_text(encoding="utf-8").splitlines()
        # A title is a line underlined by a run of one punctuation character of at least its length.
        titles = [i for i in range(len(lines) - 1) if lines[i].strip() and re.fullmatch(r"([=\-~^])\1+", lines[i + 1])
                  and len(lines[i + 1]) >= len(lines[i].rstrip())]
        for j, i in enumerate(titles):
            end = titles[j + 1] if j + 1 < len(titles) else len(lines)
            question = lines[i].strip()
            answer = "\n".join(lines[i + 2:end]).strip()
            if not question.endswith("?") or len(answer.split()) < 20:
                continue
            records.append({"id": f"python-faq/{page}/{j}", "question": question, "answer": answer,
                            "url": f"https://docs.python.org/3.11/faq/{page}.html"})
    return records


def faq_records(root: Path) -> None:
    import zstandard

    records = debian_faq(root) + python_faq(root)
    buf = io.StringIO()
    for r in records:
        r["text"] = f"Q: {r['question']}\n\nA: {r['answer']}"  # RedPajama's StackExchange layout
        buf.write(json.dumps(r, ensure_ascii=False) + "\n")
    (OUT / "faq-qa.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(buf.getvalue().encode()))
    print(f"faq-qa.jsonl.zst: {len(records)} question/answer records")


def main(argv: list[str]) -> int:
    root, html_dir = Path(argv[0]), Path(argv[1])
    web_pages(html_dir)
    c4_records(OUT.parent / "mixtures" / "corpus.en")
    foldoc(root)
    handbook(root)
    arxiv(root)
    faq_records(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

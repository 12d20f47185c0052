"""Build a multi-source benchmark corpus of a chosen size from real text installed on this machine.

One directory per LLaMA source, each in the format gristmill ingests it from:

| source | what | written as |
|---|---|---|
| common_crawl | HTML pages: Python 3.11 docs, Debian Reference (8 languages), Linux kernel docs, Debian Policy / Developer's Reference / New Maintainers' Guide, the 181 article pages of ../shared/data/html | WARC response records (``*.warc.gz``) |
| github | ``.py`` files of the CPython standard libraries under ``/root/.pyenv/versions`` (3.6 .. 3.13) | one file per source file |
| arxiv | LaTeX sources shipped in TeX Live documentation packages | ``.tex`` files |
| books | The Debian Administrator's Handbook (26 languages), one chapter per document; long Linux kernel ``.rst`` documents | ``.txt`` files |
| wikipedia | FOLDOC, Jargon File and GCIDE entries grouped into articles; Leipzig sentences (12 languages) | JSONL |
| stackexchange | Python FAQ questions with their answers, the Debian FAQ, FAQ files of installed packages | JSONL |

Install the Debian packages first (Debian's package registry; nothing is downloaded from a hub):

    apt-get install --no-install-recommends python3.11-doc debian-handbook debian-reference-{en,de,fr,ja,zh-cn,es,it,pt} \
        debian-faq debian-policy developers-reference maint-guide linux-doc-6.1 dict-foldoc dict-gcide dict-jargon \
        texlive-latex-base-doc texlive-latex-recommended-doc texlive-science-doc texlive-pictures-doc

    python benchmarks/corpus.py --mb 200 --out benchmarks/data/corpus-200

Sizes are raw bytes as written (HTML bytes for common_crawl, UTF-8 text otherwise, before compression). Each
source gets its share of ``--mb``; a source that runs out of real text is capped and the rest is spread over the
others (the manifest says so). Exact duplicates (verbatim copies under another name/URL) and near duplicates
(copies with ~1% of words replaced) are injected at ``--exact-dup-rate`` / ``--near-dup-rate`` of the documents
of each source; the GitHub source also has natural ones (the same module in several Python versions).
``manifest.json`` records packages and versions, every file used, bytes and documents per source, duplicates.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import gzip
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from shared_data import SHARED_DATA  # noqa: E402

SHARED = SHARED_DATA
SHARES = {"common_crawl": 0.55, "github": 0.15, "books": 0.10, "wikipedia": 0.08, "arxiv": 0.07,
          "stackexchange": 0.05}
PACKAGES = ["python3.11-doc", "debian-handbook", "debian-reference-en", "debian-reference-de", "debian-reference-fr",
            "debian-reference-ja", "debian-reference-zh-cn", "debian-reference-es", "debian-reference-it",
            "debian-reference-pt", "debian-faq", "debian-policy", "developers-reference", "maint-guide",
            "linux-doc-6.1", "dict-foldoc", "dict-gcide", "dict-jargon", "texlive-latex-base-doc",
            "texlive-latex-recommended-doc", "texlive-science-doc", "texlive-pictures-doc"]
# Small enough that even a 50 MB corpus has full-size files of every format: the largest batch (what bounds a
# worker's memory) is then the same at every corpus size.
WARC_FILE_BYTES = 8_000_000  # raw HTML per WARC file: one ingest unit each
JSONL_FILE_BYTES = 3_000_000


@dataclass
class Doc:
    name: str  # relative output name (files) or id (JSONL / WARC)
    text: str
    origin: str  # the real file it came from
    url: str | None = None


@dataclass
class SourceReport:
    target_bytes: int
    bytes: int = 0
    docs: int = 0
    exact_dups: int = 0
    near_dups: int = 0
    natural_exact_dups: int = 0
    exhausted: bool = False
    files: list[str] = field(default_factory=list)


# --- reading the installed text -----------------------------------------------------------------------------

def read_text(path: str) -> str:
    data = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
    return data.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), preserve_formatting=True, main_content=True, links=False,
                              alt_texts=False, comments=False, list_bullets=True)


def shuffled(paths: list[str], rng: random.Random) -> list[str]:
    paths = sorted(paths)
    rng.shuffle(paths)
    return paths


def common_crawl_docs(rng: random.Random) -> Iterator[Doc]:
    pages = [(p, f"https://docs.python.org/3.11/{os.path.relpath(p, '/usr/share/doc/python3.11/html')}")
             for p in glob.glob("/usr/share/doc/python3.11/html/**/*.html", recursive=True)
             if "/_" not in p and not p.endswith(("genindex.html", "search.html")) and "/faq/" not in p]
    pages += [(p, f"https://www.debian.org/doc/manuals/debian-reference/{Path(p).name}")
              for p in glob.glob("/usr/share/debian-reference/*.html")]
    pages += [(p, f"https://docs.kernel.org/{os.path.relpath(p, '/usr/share/doc/linux-doc-6.1/html')}")
              for p in glob.glob("/usr/share/doc/linux-doc-6.1/html/**/*.html", recursive=True)
              if "/_" not in p and not p.endswith(("genindex.html", "search.html"))]
    for pkg in ("debian-policy", "developers-reference", "maint-guide"):
        root = f"/usr/share/doc/{pkg}"
        pages += [(p, f"https://www.debian.org/doc/{pkg}/{os.path.relpath(p, root)}")
                  for p in glob.glob(f"{root}/**/*.html", recursive=True)]
    truth = json.loads((SHARED / "html" / "ground-truth.json").read_text())
    pages += [(str(p), truth.get(p.name.split(".")[0], {}).get("url") or f"https://example.org/{p.name}")
              for p in (SHARED / "html" / "html").glob("*.html.gz")]
    urls = {p: u for p, u in pages if os.path.isfile(p)}  # debian-policy has a *directory* named perl-policy.html
    for path in shuffled(list(urls), rng):
        yield Doc(hashlib.sha1(path.encode()).hexdigest()[:16], read_text(path), path, urls[path])


def github_docs(rng: random.Random) -> Iterator[Doc]:
    files = []
    for lib in sorted(glob.glob("/root/.pyenv/versions/3.*/lib/python3.*")):
        files += [p for p in glob.glob(f"{lib}/**/*.py", recursive=True) if "site-packages" not in p]
    for path in shuffled(files, rng):
        version = path.split("/lib/")[1].split("/")[0]
        rel = path.split(f"/lib/{version}/", 1)[1]
        yield Doc(f"{version}/{rel}", read_text(path), path)


def arxiv_docs(rng: random.Random) -> Iterator[Doc]:
    root = "/usr/share/doc/texlive-doc"
    files = [p for p in glob.glob(f"{root}/**/*", recursive=True) if p.endswith((".tex", ".tex.gz", ".ltx"))]
    for path in shuffled(files, rng):
        rel = os.path.relpath(path, root).removesuffix(".gz").removesuffix(".ltx").removesuffix(".tex")
        yield Doc(f"{rel}.tex", read_text(path), path)


def books_docs(rng: random.Random) -> Iterator[Doc]:
    chapters = [p for p in glob.glob("/usr/share/doc/debian-handbook/html/*/*.html")
                if not p.endswith(("index.html", "pr01.html"))]
    kernel = [p for p in glob.glob("/usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz", recursive=True)]
    for path in shuffled(chapters + kernel, rng):
        if path.endswith(".html"):
            lang = path.split("/")[-2]
            text = html_to_text(read_text(path))
            name = f"debian-handbook/{lang}/{Path(path).stem}.txt"
        else:
            text = read_text(path)
            if len(text) < 8000:  # books are long-form: skip the short kernel notes
                continue
            name = f"linux-doc/{os.path.relpath(path, '/usr/share/doc/linux-doc-6.1/Documentation')[:-7]}.txt"
        yield Doc(name, text, path)


_DICT_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _dict_number(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _DICT_B64.index(ch)
    return n


def dict_entries(name: str) -> list[str]:
    """Entries of a dictd dictionary (``.index``: word, base64 offset, base64 length; ``.dict.dz``: gzip)."""
    data = gzip.open(f"/usr/share/dictd/{name}.dict.dz").read()
    entries, seen = [], set()
    for line in Path(f"/usr/share/dictd/{name}.index").read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00"):
            continue
        span = (_dict_number(parts[1]), _dict_number(parts[2]))
        if span in seen:
            continue
        seen.add(span)
        entries.append(data[span[0]:span[0] + span[1]].decode("utf-8", errors="replace").strip())
    return entries


def wikipedia_docs(rng: random.Random) -> Iterator[Doc]:
    articles: list[Doc] = []
    for name in ("foldoc", "jargon", "gcide"):
        entries = dict_entries(name)
        group, size, first = [], 0, 0
        for i, entry in enumerate(entries):  # consecutive entries (alphabetical) make one ~4 KB article
            group.append(entry)
            size += len(entry)
            if size >= 4000 or i == len(entries) - 1:
                articles.append(Doc(f"{name}-{first:06d}", "\n\n".join(group), f"/usr/share/dictd/{name}.dict.dz"))
                group, size, first = [], 0, i + 1
    for path in sorted((SHARED / "langid").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i in range(0, len(lines), 20):
            articles.append(Doc(f"leipzig-{path.stem}-{i:05d}", " ".join(lines[i:i + 20]), str(path)))
    rng.shuffle(articles)
    yield from articles


def stackexchange_docs(rng: random.Random) -> Iterator[Doc]:
    from resiliparse.parse.html import HTMLTree

    docs: list[Doc] = []
    for path in sorted(glob.glob("/usr/share/doc/python3.11/html/faq/*.html")):
        tree = HTMLTree.parse(read_text(path))
        for i, section in enumerate(tree.body.query_selector_all("section")):
            heading = section.query_selector("h3")
            if heading is None or section.query_selector("section") is not None:
                continue
            question = heading.text.rstrip("¶").strip()
            answer = html_to_text(section.html).strip().removeprefix(question).strip()
            docs.append(Doc(f"python-faq-{Path(path).stem}-{i:03d}", f"Q: {question}\n\nA: {answer}", path,
                            f"https://docs.python.org/3.11/faq/{Path(path).name}#{i}"))
    for path in sorted(glob.glob("/usr/share/doc/debian/FAQ/*.html")):
        docs.append(Doc(f"debian-faq-{Path(path).stem}", html_to_text(read_text(path)), path))
    for path in sorted(glob.glob("/usr/share/doc/*/FAQ*") + glob.glob("/usr/share/doc/*/faq.txt*")):
        if os.path.isfile(path) and not path.endswith(".html"):
            docs.append(Doc(f"faq-{path.split('/')[4]}", read_text(path), path))
    rng.shuffle(docs)
    yield from docs


READERS = {"common_crawl": common_crawl_docs, "github": github_docs, "arxiv": arxiv_docs, "books": books_docs,
           "wikipedia": wikipedia_docs, "stackexchange": stackexchange_docs}


# --- duplicates -----------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]{3,}")
_HTML_TEXT = re.compile(r">([^<]{40,})<")


def near_duplicate(text: str, rng: random.Random, html: bool, rate: float = 0.01) -> str:
    """The text with ~``rate`` of its words replaced by other words of the same document (inside text nodes
    only for HTML): shingle Jaccard with the original stays around 0.9."""
    vocab = _WORD.findall(text[:20000]) or ["lorem"]

    def edit_words(s: str) -> str:
        return _WORD.sub(lambda m: rng.choice(vocab) if rng.random() < rate else m.group(0), s)

    if html:
        return _HTML_TEXT.sub(lambda m: ">" + edit_words(m.group(1)) + "<", text)
    return edit_words(text)


# --- writing -------------------------------------------------------------------------------------------------

class WarcWriter:
    """Rolls over to a new ``.warc.gz`` every ``WARC_FILE_BYTES`` of HTML."""

    def __init__(self, out: Path, prefix: str):
        self.out, self.prefix, self.index, self.bytes, self.file = out, prefix, 0, 0, None

    def write(self, doc: Doc) -> None:
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter

        if self.file is None or self.bytes >= WARC_FILE_BYTES:
            self.close()
            self.file = open(self.out / f"{self.prefix}-{self.index:05d}.warc.gz", "wb")
            self.writer = WARCWriter(self.file, gzip=True)
            self.index, self.bytes = self.index + 1, 0
        payload = doc.text.encode("utf-8")
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                              ("Content-Length", str(len(payload)))], protocol="HTTP/1.1")
        record = self.writer.create_warc_record(doc.url, "response", payload=io.BytesIO(payload),
                                                http_headers=headers)
        self.writer.write_record(record)
        self.bytes += len(payload)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class JsonlWriter:
    def __init__(self, out: Path, prefix: str):
        self.out, self.prefix, self.index, self.bytes, self.file = out, prefix, 0, 0, None

    def write(self, doc: Doc) -> None:
        if self.file is None or self.bytes >= JSONL_FILE_BYTES:
            self.close()
            self.file = open(self.out / f"{self.prefix}-{self.index:05d}.jsonl", "w", encoding="utf-8")
            self.index, self.bytes = self.index + 1, 0
        self.file.write(json.dumps({"id": doc.name, "text": doc.text, "url": doc.url}, ensure_ascii=False) + "\n")
        self.bytes += len(doc.text.encode("utf-8"))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class FileWriter:
    def __init__(self, out: Path, prefix: str):
        self.out, self.prefix = out, prefix

    def write(self, doc: Doc) -> None:
        path = self.out / (doc.name if self.prefix == "docs" else f"{self.prefix}/{doc.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.text, encoding="utf-8")

    def close(self) -> None:
        pass


WRITERS = {"common_crawl": WarcWriter, "github": FileWriter, "arxiv": FileWriter, "books": FileWriter,
           "wikipedia": JsonlWriter, "stackexchange": JsonlWriter}


def build_source(source: str, target: int, out: Path, rng: random.Random, exact_rate: float,
                 near_rate: float) -> SourceReport:
    """Write real documents until ``target`` bytes (originals + injected copies) or the text runs out."""
    out.mkdir(parents=True, exist_ok=True)
    report = SourceReport(target)
    writer, copies_writer = WRITERS[source](out, "docs"), WRITERS[source](out, "copies")
    copies: list[Doc] = []
    seen: set[bytes] = set()
    html = source == "common_crawl"
    budget = target
    docs = READERS[source](rng)
    for doc in docs:
        if budget <= 0.002 * target:
            break
        # A document larger than what is left is skipped, so a corpus lands on its size (2x --mb is 2x bytes).
        if not doc.text.strip() or (report.docs and len(doc.text) > budget):
            continue
        digest = hashlib.sha1(doc.text.encode("utf-8", "replace")).digest()
        report.natural_exact_dups += digest in seen
        seen.add(digest)
        writer.write(doc)
        size = len(doc.text.encode("utf-8"))
        report.bytes += size
        report.docs += 1
        report.files.append(doc.origin)
        budget -= size
        draw = rng.random()
        if draw < exact_rate:
            copies.append(Doc(f"exact/{doc.name}", doc.text, doc.origin, doc.url and doc.url + "?mirror=1"))
            report.exact_dups += 1
            budget -= size
        elif draw < exact_rate + near_rate:
            copies.append(Doc(f"near/{doc.name}", near_duplicate(doc.text, rng, html), doc.origin,
                              doc.url and doc.url + "?mirror=2"))
            report.near_dups += 1
            budget -= size
    else:
        report.exhausted = True
    writer.close()
    for doc in copies:  # copies go to separate files/units so that they meet their originals only in dedup
        copies_writer.write(doc)
        report.bytes += len(doc.text.encode("utf-8"))
        report.docs += 1
    copies_writer.close()
    return report


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in PACKAGES:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        out[pkg] = res.stdout.strip() if res.returncode == 0 else "not installed"
    return out


def build_corpus(out: Path, mb: float, seed: int, exact_rate: float, near_rate: float, log=print) -> dict:
    total = int(mb * 1e6)
    reports: dict[str, SourceReport] = {}
    # Smallest shares first; each source gets its share of what is still to be written, so the bytes a
    # source cannot fill move on to the larger ones after it.
    order = sorted(SHARES, key=SHARES.get)
    for i, source in enumerate(order):
        written = sum(r.bytes for r in reports.values())
        target = int((total - written) * SHARES[source] / sum(SHARES[s] for s in order[i:]))
        start = time.perf_counter()
        rep = build_source(source, target, out / source, random.Random(f"{seed}:{source}"), exact_rate, near_rate)
        reports[source] = rep
        log(f"{source:<14} {rep.bytes / 1e6:8.1f} MB of {target / 1e6:8.1f} target, {rep.docs:>7} docs "
            f"(exact copies {rep.exact_dups}, near {rep.near_dups}, natural exact {rep.natural_exact_dups})"
            f"{'  [ran out of text]' if rep.exhausted else ''}  {time.perf_counter() - start:.1f}s")
    manifest = {
        "mb_requested": mb, "bytes": sum(r.bytes for r in reports.values()), "seed": seed,
        "exact_dup_rate": exact_rate, "near_dup_rate": near_rate, "near_dup_word_edit_rate": 0.01,
        "shares": SHARES, "packages": package_versions(),
        "python_stdlibs": sorted(Path(p).name for p in glob.glob("/root/.pyenv/versions/3.*")),
        "shared_data": ["html/html/*.html.gz (scrapinghub/article-extraction-benchmark, MIT)",
                        "langid/*.txt (Leipzig sentences via lingua-py, Apache-2.0)"],
        "sources": {s: {**{k: v for k, v in vars(r).items() if k != "files"}, "files": sorted(set(r.files))}
                    for s, r in reports.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200.0, help="corpus size in MB (raw bytes as written)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/data/corpus-<mb>")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact-dup-rate", type=float, default=0.02, help="share of documents copied verbatim")
    ap.add_argument("--near-dup-rate", type=float, default=0.02, help="share copied with ~1%% of words edited")
    args = ap.parse_args()
    out = args.out or Path(__file__).parent / "data" / f"corpus-{args.mb:g}"
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists and is not empty; remove it or pick another --out", file=sys.stderr)
        return 2
    manifest = build_corpus(out, args.mb, args.seed, args.exact_dup_rate, args.near_dup_rate)
    print(f"{out}: {manifest['bytes'] / 1e6:.1f} MB, manifest {out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

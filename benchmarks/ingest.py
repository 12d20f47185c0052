"""Crawl-ingest hot paths, side by side.

WARC parsing records/s, warcio vs fastwarc, reading every record's payload, on the same files: the Common Crawl
sample repeated to a few thousand records, and the 181 labelled article pages of
scrapinghub/article-extraction-benchmark written as response records. Plus gristmill's WarcReader end to end
(parse + charset + extraction + batching) on the same file. HTML extraction alone (every extractor mode, F1,
pages per CPU-second, held-out evaluation) is benchmarks/extraction.py.

Run: python benchmarks/ingest.py [--data ../shared/data] [--repeat 20]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import gzip
import io
import json
import shutil
import tempfile
import time
from pathlib import Path


from gristmill.stages.ingest.base import Limits, Unit  # noqa: E402
from gristmill.stages.ingest.warc import WarcOptions, WarcReader  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402


def load_pages(html_dir: Path) -> dict[str, bytes]:
    truth = json.loads((html_dir / "ground-truth.json").read_text(encoding="utf-8"))
    return {key: gzip.decompress((html_dir / "html" / f"{key}.html.gz").read_bytes()) for key in sorted(truth)}


def write_pages_warc(raw: dict[str, bytes], path: Path, repeat: int) -> int:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    n = 0
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for r in range(repeat):
            for key, body in raw.items():
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
                url = f"https://bench.example/{r}/{key}.html"
                record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
                writer.write_record(record)
                n += 1
    return n


def write_repeated(src: Path, path: Path, repeat: int) -> None:
    with open(path, "wb") as out:  # gzip members concatenate into a valid multi-member .warc.gz
        for _ in range(repeat):
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out)


def count_warcio(path: Path) -> int:
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            record.content_stream().read()
            n += 1
    return n


def count_fastwarc(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator

    n = 0
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, parse_http=True):
            record.reader.read()
            n += 1
    return n


def count_gristmill(path: Path) -> int:
    reader = WarcReader(WarcOptions(), Limits())
    return sum(t.num_rows for t in reader.read(Unit(0, (str(path),))))


def best_rate(fn, path: Path, tries: int) -> tuple[int, float]:
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - start)
    return n, n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--repeat", type=int, default=20, help="copies of each sample in the built WARCs")
    args = parser.parse_args()

    raw = load_pages(args.data / "html")
    with tempfile.TemporaryDirectory() as tmp:
        cc = Path(tmp) / "cc-sample-repeated.warc.gz"
        write_repeated(args.data / "warc" / "cc-main-2020-34-sample.warc.gz", cc, args.repeat * 2)
        pages = Path(tmp) / "article-pages.warc.gz"
        write_pages_warc(raw, pages, args.repeat)
        print("## WARC parsing (every record's payload read, 1 core, best of 3)\n")
        print(
            "| file | records | MB (gz) | warcio rec/s | fastwarc rec/s | fastwarc / warcio "
            "| gristmill WarcReader rec/s (parse+decode+extract) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, path in [
            (f"CC-MAIN-2020-34 sample x{args.repeat * 2}", cc),
            (f"181 article pages x{args.repeat} (warcio-written)", pages),
        ]:
            n_w, warcio_rate = best_rate(count_warcio, path, 3)
            n_f, fastwarc_rate = best_rate(count_fastwarc, path, 3)
            n_g, gristmill_rate = best_rate(count_gristmill, path, 1)
            assert n_w == n_f == n_g, (label, n_w, n_f, n_g)  # all three see every record
            size = path.stat().st_size / 1e6
            print(
                f"| {label} | {n_f:,} | {size:.1f} | {warcio_rate:,.0f} | {fastwarc_rate:,.0f} | "
                f"{fastwarc_rate / warcio_rate:.1f}x | {gristmill_rate:,.0f} |"
            )


if __name__ == "__main__":
    main()

from __future__ import annotations

import gzip
import io
import shutil

import pytest
from warcio.archiveiterator import ArchiveIterator as WarcioIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Limits
from gristmill.stages.ingest.warc import WarcReader, WetReader, undo_content_encoding

from .conftest import CC_SAMPLE, TRUNCATED, WHIRLWIND_WARC, WHIRLWIND_WET, documents, read_rows, reasons_of


def warcio_census(path) -> tuple[int, list[str]]:
    """(records in the file, target URIs of its 2xx HTML responses), counted independently with warcio."""
    total, html = 0, []
    with open(path, "rb") as f:
        for rec in WarcioIterator(f):
            total += 1
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            ctype = (rec.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "text/html" and rec.http_headers.get_statuscode().startswith("2"):
                html.append(rec.rec_headers.get_header("WARC-Target-URI"))
    return total, html


def test_common_crawl_sample_one_document_per_html_response(small_batches):
    total, html_urls = warcio_census(CC_SAMPLE)
    rows = read_rows(WarcReader, [CC_SAMPLE], small_batches)
    assert len(rows) == total == 50  # every record accounted for, in order
    docs = documents(rows)
    assert [d["url"] for d in docs] == html_urls
    assert len(docs) == 16
    assert all(d["text"].strip() and d["origin"].startswith("<urn:uuid:") for d in docs)
    assert set(reasons_of(rows)) == {None, reasons.NOT_RESPONSE}  # warcinfo, request, metadata records
    assert len({r["origin"] for r in rows}) == total


def test_windows_1251_page_decodes_to_cyrillic():
    rows = read_rows(WarcReader, [CC_SAMPLE])
    ru = next(d for d in documents(rows) if d["url"] == "http://01spb.ru/company/")
    assert "О компании" in ru["text"]
    assert "пожарной безопасности" in ru["text"]


def test_truncated_record_is_rejected_without_crashing():
    rows = read_rows(WarcReader, [TRUNCATED])
    assert reasons_of(rows) == [reasons.TRUNCATED_RECORD]
    assert rows[0]["url"].startswith("http://www.houstonpress.com/")


def test_file_cut_mid_record_keeps_the_records_before_the_cut(tmp_path):
    raw = gzip.decompress(CC_SAMPLE.read_bytes())
    ru_response = raw.index(b"WARC-Target-URI: http://01spb.ru/company/", raw.index(b"WARC-Type: response"))
    cut = tmp_path / "cut.warc"
    cut.write_bytes(raw[: ru_response + 30_000])  # inside the ru response's payload
    rows = read_rows(WarcReader, [cut])
    assert reasons_of(rows)[-1] == reasons.TRUNCATED_RECORD
    assert len(documents(rows)) == 1  # the first HTML response, before the cut


def _insert_at_record(data: bytes, marker: bytes, index: int, junk: bytes) -> bytes:
    starts = [i for i in range(len(data)) if data.startswith(marker, i)]
    return data[: starts[index]] + junk + data[starts[index] :]


def test_garbage_between_plain_records_is_one_malformed_row_and_reading_resumes(tmp_path):
    raw = gzip.decompress(CC_SAMPLE.read_bytes())
    bad = tmp_path / "garbage.warc"
    bad.write_bytes(_insert_at_record(raw, b"WARC/1.0\r\n", 10, b"this is not a WARC header\r\n\r\n" * 3))
    rows = read_rows(WarcReader, [bad])
    assert len(rows) == 51
    assert reasons_of(rows)[10].startswith(reasons.MALFORMED_RECORD + ": ")
    assert len(documents(rows)) == 16


def test_garbage_between_gzip_members_is_one_malformed_row_and_reading_resumes(tmp_path):
    data = CC_SAMPLE.read_bytes()
    bad = tmp_path / "garbage.warc.gz"
    bad.write_bytes(_insert_at_record(data, b"\x1f\x8b\x08", 20, b"\x00garbage bytes\xff" * 40))
    rows = read_rows(WarcReader, [bad])
    assert len(rows) == 51
    assert reasons_of(rows)[20].startswith(reasons.MALFORMED_RECORD)
    assert len(documents(rows)) == 16


def test_a_file_of_garbage_yields_one_malformed_row(tmp_path):
    bad = tmp_path / "random.warc.gz"
    bad.write_bytes(b"\x1f\x8b\x08" + bytes(range(256)) * 20)
    rows = read_rows(WarcReader, [bad])
    assert len(rows) == 1 and rows[0]["reject_reason"].startswith(reasons.MALFORMED_RECORD)
    assert rows[0]["origin"] == f"{bad}:0"


def test_records_over_max_record_bytes_are_rejected_unread():
    limit = 20_000
    rows = read_rows(WarcReader, [CC_SAMPLE], Limits(max_record_bytes=limit))
    big = [r for r in rows if r["reject_reason"] == reasons.RECORD_TOO_LARGE]
    assert len(rows) == 50
    assert 0 < len(big) < 16
    assert len(big) + len(documents(rows)) == 16


def _write_response(writer: WARCWriter, url: str, body: bytes, content_type: str, status="200 OK", **extra):
    headers = [("Content-Type", content_type), *extra.items()]
    http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


def test_non_html_non_2xx_and_compressed_responses(tmp_path):
    words = b"A paragraph of real words about rivers. " * 20
    page = b"<html><body><article><p>" + words + b"</p></article></body></html>"
    path = tmp_path / "mixed.warc.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        _write_response(writer, "http://x.test/a.html", page, "text/html; charset=utf-8")
        _write_response(writer, "http://x.test/b.png", b"\x89PNG....", "image/png")
        _write_response(writer, "http://x.test/gone", page, "text/html", status="404 Not Found")
        gzipped = {"Content-Encoding": "gzip"}
        _write_response(writer, "http://x.test/c.html", gzip.compress(page), "text/html", **gzipped)
        _write_response(writer, "http://x.test/empty.html", b"<html><body></body></html>", "text/html")
    rows = read_rows(WarcReader, [path])
    assert reasons_of(rows) == [None, reasons.NOT_HTML, "http_status: 404", None, reasons.EMPTY_TEXT]
    assert "rivers" in rows[0]["text"] and rows[3]["text"] == rows[0]["text"]


def test_undo_content_encoding_is_bounded():
    body = gzip.compress(b"a" * 100_000)
    assert undo_content_encoding(body, "gzip", 1_000) == (b"", reasons.RECORD_TOO_LARGE, ())
    assert undo_content_encoding(body, "br", 10**6)[1].startswith(reasons.UNSUPPORTED_CONTENT_ENCODING)
    assert undo_content_encoding(b"plain", None, 10) == (b"plain", None, ())


def test_trafilatura_extractor_reads_the_sample():
    rows = read_rows(WarcReader, [CC_SAMPLE], extractor="trafilatura")
    assert len(rows) == 50
    docs = documents(rows)
    ru = next(d for d in docs if d["url"] == "http://01spb.ru/company/")
    assert "пожарной безопасности" in ru["text"]
    # trafilatura may find no main text on a spam/listing page: such a page is rejected, never dropped
    assert set(reasons_of(rows)) <= {None, reasons.NOT_RESPONSE, reasons.EMPTY_TEXT}
    assert len(docs) >= 12
    resiliparse_text = {d["url"]: d["text"] for d in documents(read_rows(WarcReader, [CC_SAMPLE]))}
    assert any(d["text"] != resiliparse_text[d["url"]] for d in docs)  # really a different extractor


def test_wikipedia_page_warc_and_wet_agree(tmp_path):
    warc_docs = documents(read_rows(WarcReader, [WHIRLWIND_WARC]))
    wet_rows = read_rows(WetReader, [WHIRLWIND_WET])
    assert reasons_of(wet_rows) == [reasons.NOT_CONVERSION, None]  # warcinfo, then the page's text
    (wet_doc,) = documents(wet_rows)
    (warc_doc,) = warc_docs
    assert wet_doc["url"] == warc_doc["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete" in wet_doc["text"] and "Escopete" in warc_doc["text"]


def test_wet_reader_rejects_oversized_conversion():
    rows = read_rows(WetReader, [WHIRLWIND_WET], Limits(max_record_bytes=1_000))
    assert reasons_of(rows) == [reasons.NOT_CONVERSION, reasons.RECORD_TOO_LARGE]


def test_uncompressed_copy_reads_the_same(tmp_path):
    plain = tmp_path / "sample.warc"
    with gzip.open(CC_SAMPLE) as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    gz_rows, plain_rows = read_rows(WarcReader, [CC_SAMPLE]), read_rows(WarcReader, [plain])
    # A document's origin is its record id; a rejected record's also names the file and offset.
    assert [(r["text"], r["url"], r["origin"].split(" ")[-1]) for r in gz_rows] == [
        (r["text"], r["url"], r["origin"].split(" ")[-1]) for r in plain_rows
    ]


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="extra"):
        WarcReader.Options(extractor="resiliparse", no_such_option=1)
    with pytest.raises(ValueError):
        WarcReader.Options(extractor="boilerpipe")

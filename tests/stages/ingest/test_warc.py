from __future__ import annotations

import gzip
import zlib
import io
import json
import shutil

import pytest
from warcio.archiveiterator import ArchiveIterator as WarcioIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Limits
from gristmill.stages.ingest.warc import WarcReader, WetReader, undo_content_encoding

from .conftest import CC_SAMPLE, TRUNCATED, WARC_DIR, WHIRLWIND_WARC, WHIRLWIND_WET, documents, read_rows, reasons_of


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


@pytest.mark.parametrize("read_ahead", [3, 32, 50])
def test_rows_are_the_same_however_many_records_are_read_before_extraction(tmp_path, monkeypatch, read_ahead):
    raw = gzip.decompress(CC_SAMPLE.read_bytes())
    bad = tmp_path / "garbage.warc"
    bad.write_bytes(_insert_at_record(raw, b"WARC/1.0\r\n", 10, b"this is not a WARC header\r\n\r\n" * 3))
    monkeypatch.setattr(WarcReader, "READ_AHEAD_RECORDS", 1)
    one_at_a_time = read_rows(WarcReader, [CC_SAMPLE, bad], Limits(batch_rows=7))
    monkeypatch.setattr(WarcReader, "READ_AHEAD_RECORDS", read_ahead)
    assert read_rows(WarcReader, [CC_SAMPLE, bad], Limits(batch_rows=7)) == one_at_a_time
    monkeypatch.setattr(WarcReader, "READ_AHEAD_BYTES", 1)  # every page alone
    assert read_rows(WarcReader, [CC_SAMPLE, bad], Limits(batch_rows=7)) == one_at_a_time


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
        WarcReader.Params(extractor="resiliparse", no_such_option=1)
    with pytest.raises(ValueError):
        WarcReader.Params(extractor="boilerpipe")


# --- old crawls, legacy encodings and payloads that are not what their headers say -------------------------------

DATA_DIR = WARC_DIR.parent


def _sentences(name: str, codec: str, count: int = 12) -> list[str]:
    """Real sentences of ``tests/data/<name>`` that ``codec`` encodes and decodes back unchanged."""
    out = []
    for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines():
        try:
            if line.encode(codec).decode(codec) == line:
                out.append(line)
        except UnicodeEncodeError:
            continue
    return out[:count]


def _page(sentences: list[str], head: str = "") -> str:
    paragraphs = "".join(f"<p>{s}</p>\n" for s in sentences)
    return f"<html><head>{head}<title>t</title></head><body><article>\n{paragraphs}</article></body></html>"


def _http_block(body: bytes, *headers: str, newline: bytes = b"\n", status: str = "200 OK") -> bytes:
    """An HTTP response block exactly as given: old crawlers stored header lines ending with a bare LF."""
    lines = [f"HTTP/1.1 {status}".encode(), *(h.encode() for h in headers)]
    return newline.join(lines) + newline + newline + body


def _write_raw_response(writer: WARCWriter, url: str, block: bytes, **warc_headers: str) -> str:
    """A response record whose HTTP block is stored byte for byte; returns its record id.

    warcio parses and rewrites the HTTP headers of a ``response`` (with CRLF); built as a ``resource`` and then
    typed ``response``, the block keeps its own line endings.
    """
    record = writer.create_warc_record(url, "resource", payload=io.BytesIO(block), length=len(block),
                                       warc_content_type="application/http; msgtype=response",
                                       warc_headers_dict=warc_headers)
    record.rec_type = "response"
    record.rec_headers.replace_header("WARC-Type", "response")
    writer.write_record(record)
    return record.rec_headers.get_header("WARC-Record-ID")


def _old_crawl(path, records: list[tuple[str, bytes]], version: str = "WARC/0.18", gzip_members: bool = False,
               **warc_headers: str) -> list[str]:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip_members, warc_version=version)
        return [_write_raw_response(writer, url, block, **warc_headers) for url, block in records]


@pytest.mark.parametrize("codec", ["euc-jp", "cp932", "gbk", "windows-1251"])  # cp932: Shift-JIS as Windows writes it
def test_old_crawl_with_bare_lf_http_headers_decodes_legacy_encodings(tmp_path, codec):
    name = {"gbk": "langid/zh.txt", "windows-1251": "langid/ru.txt"}.get(codec, "clean/ja.txt")
    sentences = _sentences(name, codec)
    body = _page(sentences).encode(codec)  # no charset anywhere: detection has to find it
    path = tmp_path / "clueweb09-era.warc"
    _old_crawl(path, [("http://example.jp/a.html", _http_block(body, "Content-Type: text/html"))])
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] is None
    for sentence in sentences:
        assert sentence in row["text"]
    assert "\ufffd" not in row["text"]


def test_old_crawl_warc_headers_with_bare_lf_are_read_and_counted(tmp_path):
    sentences = _sentences("clean/ja.txt", "euc-jp")
    block = _http_block(_page(sentences).encode("euc-jp"), "Content-Type: text/html; charset=EUC-JP")
    records = []
    for url in ("http://example.jp/a.html", "http://example.jp/b.html"):
        one = tmp_path / "one.warc"
        _old_crawl(one, [(url, block)])
        # WARC header lines end with a bare LF too; the block (and so Content-Length) stays as it is.
        header, _, rest = one.read_bytes().partition(b"\r\n\r\n")
        assert rest.endswith(b"\r\n\r\n")
        records.append(header.replace(b"\r\n", b"\n") + b"\n\n" + rest[:-4] + b"\n\n")
    bare = tmp_path / "bare-lf.warc"
    bare.write_bytes(b"".join(records))
    reader = WarcReader(WarcReader.Params(), Limits())
    (table,) = list(reader.read(reader.units([str(bare)], 0)[0]))
    rows = table.to_pylist()
    assert [r["reject_reason"] for r in rows] == [None, None]
    assert all(sentences[0] in r["text"] for r in rows)
    assert [r["notes"] for r in rows] == [[reasons.WARC_HEADERS_BARE_LF]] * 2


def test_shift_jis_page_declared_by_meta_charset_uses_the_vendor_superset(tmp_path):
    # Pages labelled Shift_JIS are written in Windows-31J (cp932): NEC circled digits, IBM kanji ...
    sentences = ["①会社概要について ②採用情報 ③お問い合わせ", *_sentences("clean/ja.txt", "cp932", 6)]
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    body = _page(sentences, head=meta).encode("cp932")
    path = tmp_path / "sjis.warc.gz"
    _old_crawl(path, [("http://example.jp/sjis.html", _http_block(body, "Content-Type: text/html", newline=b"\r\n"))],
               version="WARC/1.0", gzip_members=True)
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] is None
    for sentence in sentences:
        assert sentence in row["text"]


def test_invalid_utf8_is_replaced_and_counted_not_turned_into_mojibake(tmp_path):
    sentences = _sentences("clean/ja.txt", "utf-8")
    body = _page(sentences).encode("utf-8").replace(b"</p>", b"\xff</p>", 1)  # one stray byte
    path = tmp_path / "stray-byte.warc.gz"
    block = _http_block(body, "Content-Type: text/html; charset=utf-8", newline=b"\r\n")
    _old_crawl(path, [("http://example.jp/u.html", block)], version="WARC/1.0", gzip_members=True)
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] is None
    assert all(s in row["text"] for s in sentences[1:])
    assert row["text"].count("\ufffd") == 1
    assert row["notes"] == [reasons.INVALID_BYTES_REPLACED]


def test_gzip_label_over_a_plain_body_uses_the_body_and_counts_it(tmp_path):
    body = _page(_sentences("clean/en.txt", "ascii")).encode()
    path = tmp_path / "mislabelled.warc.gz"
    block = _http_block(body, "Content-Type: text/html", "Content-Encoding: gzip", newline=b"\r\n")
    _old_crawl(path, [("http://example.com/p.html", block)], version="WARC/1.0", gzip_members=True)
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] is None
    assert _sentences("clean/en.txt", "ascii")[0] in row["text"]
    assert row["notes"] == [reasons.CONTENT_ENCODING_NOT_APPLIED]
    # A gzip stream the crawler stored cut short is kept as far as it goes, and counted.
    cut, reason, notes = undo_content_encoding(gzip.compress(body)[:-40], "gzip", 10**6)
    assert reason is None and 0 < len(cut) < len(body) and body.startswith(cut)
    assert notes == (reasons.COMPRESSED_PAYLOAD_CUT,)
    # A body that starts as gzip but is corrupt is still rejected.
    assert undo_content_encoding(b"\x1f\x8b\x08garbage", "gzip", 100)[1].startswith(
        reasons.UNSUPPORTED_CONTENT_ENCODING)


def _png() -> bytes:
    """A valid 16x16 grey PNG."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(range(0, 256, 16)) for _ in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_png_labelled_text_html_is_rejected_as_binary_naming_file_and_record(tmp_path):
    path = tmp_path / "png.warc.gz"
    (record_id,) = _old_crawl(path, [("http://example.com/logo", _http_block(_png(), "Content-Type: text/html",
                                                                             newline=b"\r\n"))],
                              version="WARC/1.0", gzip_members=True)
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] == f"{reasons.BINARY_PAYLOAD}: png"
    assert row["origin"] == f"{path}:0 {record_id}"


def test_every_rejected_warc_record_names_its_file_and_record_id():
    (row,) = read_rows(WarcReader, [TRUNCATED])
    assert row["reject_reason"] == reasons.TRUNCATED_RECORD
    path, record_id = row["origin"].split(" ")
    assert path == f"{TRUNCATED}:0" and record_id.startswith("<urn:uuid:")
    rows = read_rows(WarcReader, [CC_SAMPLE])
    rejected = [r for r in rows if r["reject_reason"] is not None]
    assert rejected and all(r["origin"].startswith(f"{CC_SAMPLE}:") and " <urn:uuid:" in r["origin"]
                            for r in rejected)
    assert all(r["origin"].startswith("<urn:uuid:") for r in documents(rows))


def test_payload_the_crawler_cut_is_kept_and_counted(tmp_path):
    body = _page(_sentences("clean/en.txt", "ascii")).encode()[:-300]  # cut mid-page, as the crawler stored it
    path = tmp_path / "cut.warc.gz"
    _old_crawl(path, [("http://example.com/long.html", _http_block(body, "Content-Type: text/html",
                                                                    newline=b"\r\n"))],
               version="WARC/1.0", gzip_members=True, **{"WARC-Truncated": "length"})
    (row,) = read_rows(WarcReader, [path])
    assert row["reject_reason"] is None
    assert row["notes"] == [reasons.PAYLOAD_TRUNCATED_BY_CRAWLER]


def test_counters_and_named_rejects_reach_the_run_statistics(tmp_path):
    from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
    from gristmill.pipeline.inspection import connect

    sentences = _sentences("clean/ja.txt", "euc-jp")
    crawl = tmp_path / "old.warc.gz"
    ids = _old_crawl(crawl, [
        ("http://example.jp/a.html", _http_block(_page(sentences).encode("euc-jp"), "Content-Type: text/html")),
        ("http://example.jp/b.html", _http_block(_page(sentences).encode(), "Content-Type: text/html",
                                                 "Content-Encoding: gzip")),
        ("http://example.jp/logo", _http_block(_png(), "Content-Type: text/html")),
    ], gzip_members=True)
    spec = parse_pipeline(f"""
name: counters
inputs:
  - source: common_crawl
    format: warc
    paths: ["{crawl}"]
output: {{rejects: true}}
execution: {{executor: local}}
""")
    run_dir = tmp_path / "run"
    run_plan(build_plan(spec, tmp_path), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    con = connect(run_dir)
    assert dict(con.execute("SELECT counter, rows FROM counters WHERE step = 'ingest'").fetchall()) == {
        reasons.CONTENT_ENCODING_NOT_APPLIED: 1}
    assert con.execute("SELECT rows_in, rows_out FROM stage_stats WHERE step = 'ingest'").fetchone() == (3, 2)
    (reason, origin), = con.execute("SELECT reject_reason, origin FROM rejects").fetchall()
    assert reason == f"{reasons.BINARY_PAYLOAD}: png"
    assert origin.startswith(f"{crawl}:") and origin.endswith(ids[2])
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    assert {(c["counter"], c["rows"]) for c in stats["counters"]} == {(reasons.CONTENT_ENCODING_NOT_APPLIED, 1)}
    docs = con.execute("SELECT text FROM documents ORDER BY doc_id").fetchall()
    assert all(sentences[0] in text for (text,) in docs)

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Limits
from gristmill.stages.ingest.jsonl import JsonlReader, open_decompressed

from .conftest import WHIRLWIND_WET, documents, read_rows, reasons_of


def _real_paragraphs() -> list[str]:
    """Paragraphs of the Wikipedia page in the WET sample: real text for the lines."""
    text = gzip.decompress(WHIRLWIND_WET.read_bytes()).decode("utf-8")
    body = text.split("\r\n\r\n", 3)[-1]
    paras = [p.strip() for p in body.split("\n") if len(p.strip()) > 20]
    assert len(paras) >= 8
    return paras


def _lines() -> tuple[list[bytes], list[str]]:
    paras = _real_paragraphs()[:8]
    lines = [
        json.dumps({"text": p, "id": f"doc-{i}", "u": f"https://an.wikipedia.org/{i}"}).encode()
        for i, p in enumerate(paras)
    ]
    lines.insert(3, b'{"text": "unterminated')  # malformed JSON in the middle
    lines.insert(5, json.dumps({"body": "no text field", "id": "x"}).encode())
    lines.insert(6, json.dumps({"text": 42}).encode())  # text that is not a string
    lines.insert(7, b"")  # blank lines are not records
    return lines, paras


def _write(path, data: bytes) -> None:
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz", "docs.jsonl.zst"])
def test_bad_lines_are_rejected_and_the_rest_is_read(tmp_path, name, small_batches):
    lines, paras = _lines()
    path = tmp_path / name
    _write(path, b"\n".join(lines) + b"\n")
    rows = read_rows(JsonlReader, [path], small_batches, id_field="id", url_field="u")
    assert len(rows) == 11  # 8 good + 3 bad; the blank line is no record
    rs = reasons_of(rows)
    assert rs[3].startswith(reasons.MALFORMED_JSON + ": ")
    assert rs[5] == rs[6] == reasons.MISSING_TEXT_FIELD
    assert [d["text"] for d in documents(rows)] == paras
    assert [d["origin"] for d in documents(rows)] == [f"doc-{i}" for i in range(8)]
    assert documents(rows)[0]["url"] == "https://an.wikipedia.org/0"
    assert rows[3]["origin"] == f"{path}:4"  # no id on a malformed line: path:line (1-based)


@pytest.mark.parametrize("name", ["docs.jsonl.gz", "docs.jsonl.zst"])
def test_compression_is_read_from_the_name_not_the_uri_query(tmp_path, name):
    """An object-store URI carries its options after the name (``...jsonl.gz?endpoint_override=...``)."""
    path = tmp_path / name
    _write(path, b'{"text": "one"}\n{"text": "two"}\n')
    assert open_decompressed(f"file://{path}?scheme=http").read() == b'{"text": "one"}\n{"text": "two"}\n'


def test_default_origin_is_path_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\r\n{"text": "two"}\r\n', encoding="utf-8")
    rows = read_rows(JsonlReader, [path])
    expected = [("one", f"{path}:1", None), ("two", f"{path}:2", None)]
    assert [(r["text"], r["origin"], r["url"]) for r in rows] == expected


def test_custom_text_field(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"content": "hello"}\n{"text": "ignored"}\n', encoding="utf-8")
    assert reasons_of(read_rows(JsonlReader, [path], text_field="content")) == [None, reasons.MISSING_TEXT_FIELD]


def test_line_over_max_record_bytes_is_rejected_and_skipped(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(
        json.dumps({"text": "x" * 5000}) + "\n" + json.dumps({"text": "small"}) + "\n", encoding="utf-8"
    )
    rows = read_rows(JsonlReader, [path], Limits(max_record_bytes=1000))
    assert reasons_of(rows) == [reasons.RECORD_TOO_LARGE, None]
    assert rows[1]["text"] == "small" and rows[1]["origin"] == f"{path}:2"


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    lines, _ = _lines()
    data = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    rows = read_rows(JsonlReader, [path])
    assert rows[-1]["reject_reason"].startswith(reasons.READ_ERROR)
    assert len(documents(rows)) >= 1


def test_invalid_utf8_is_replaced(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    assert read_rows(JsonlReader, [path])[0]["text"] == "caf\ufffd"


def test_invalid_utf8_in_a_line_is_replaced_and_counted(tmp_path):
    paras = _real_paragraphs()[:2]
    good = json.dumps({"text": paras[0]}, ensure_ascii=False).encode()
    line = json.dumps({"text": paras[1]}, ensure_ascii=False).encode()
    bad = line[:12] + line[12:].replace(b" ", b" \xff ", 1)  # a stray byte inside the text
    path = tmp_path / "latin1-stray.jsonl"
    path.write_bytes(good + b"\n" + bad + b"\n")
    rows = read_rows(JsonlReader, [path])
    assert reasons_of(rows) == [None, None]
    assert [r["notes"] for r in rows] == [None, [reasons.INVALID_BYTES_REPLACED]]
    assert rows[1]["text"].count("\ufffd") == 1

from __future__ import annotations

import re

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from gristmill.stages.ingest.encoding import decode_html, decode_text

from .conftest import CC_SAMPLE


@pytest.fixture(scope="module")
def ru_page() -> bytes:
    """The windows-1251 page of the Common Crawl sample, raw payload bytes."""
    with open(CC_SAMPLE, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
            if rec.headers.get("WARC-Target-URI") == "http://01spb.ru/company/":
                return rec.reader.read()
    raise AssertionError("ru page not in the sample")


def _cyrillic(text: str) -> bool:
    return "О компании" in text and "пожарной безопасности" in text


def test_http_charset(ru_page):
    assert _cyrillic(decode_html(ru_page, "windows-1251"))


def test_meta_charset_when_the_header_has_none(ru_page):
    assert b'charset=windows-1251"' in ru_page[:3000]
    assert _cyrillic(decode_html(ru_page, None))


def test_detection_when_header_and_meta_are_missing(ru_page):
    no_meta = re.sub(rb"<meta[^>]*charset[^>]*>", b"", ru_page, flags=re.I)
    assert b"charset" not in no_meta[:3000].lower()
    assert _cyrillic(decode_html(no_meta, None))


def test_a_wrong_utf8_header_falls_through_to_the_page(ru_page):
    assert _cyrillic(decode_html(ru_page, "utf-8"))


def test_decoding_never_raises():
    assert decode_html(b"\xff\xfe\x00garbage\x80\x81", "no-such-charset") is not None
    assert decode_text(b"caf\xe9 \xef\xbb\xbf") == "caf\ufffd \ufeff"
    assert decode_text("\ufeffhello".encode()) == "hello"

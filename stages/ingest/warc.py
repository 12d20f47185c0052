"""WARC and WET readers (fastwarc).

Every WARC record becomes one row: HTML responses become documents, everything else (warcinfo, request,
metadata, revisit, non-HTML or non-2xx responses) a rejected row, so the funnel counts the records of a file.
A corrupt stretch of a file (bad header, garbage between records) becomes one ``malformed_record`` row and
reading resumes at the next gzip member / ``WARC/1.x`` header, so one bad record does not lose the rest.
"""

from __future__ import annotations

import zlib
from typing import Any, BinaryIO, ClassVar, Iterator

import pyarrow as pa

from gristmill.core.storage import open_input
from gristmill.stages.base import require
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Limits, Reader, ReaderOptions, RecordBatcher, Unit
from gristmill.stages.ingest.encoding import decode_html, decode_text
from gristmill.stages.ingest.html import ExtractionOptions, make_extractor

Row = tuple[str, "str | None", str, "str | None"]

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/1."
_SCAN_CHUNK = 1 << 20


def iter_warc_records(path: str, parse_http: bool) -> Iterator[tuple[Any, str | None, int]]:
    """Yield ``(record, None, offset)`` per record, or ``(None, error, offset)`` for a corrupt stretch.

    fastwarc stops at the first unparsable header; we then scan for the next gzip member (``.warc.gz``) or
    ``WARC/1.`` line (plain ``.warc``) after the last good record and restart the iterator there. Restarts
    only move forward, so a file of garbage ends after one scan.
    """
    warc = require("fastwarc.warc", "crawl")
    with open_input(path) as f:  # a local file or an object-store object (seekable either way)
        marker = _resync_marker(f.read(len(_WARC_MAGIC)))
        start = 0
        while True:
            f.seek(start)
            last = -1
            try:
                for record in warc.ArchiveIterator(f, parse_http=parse_http):
                    last = record.stream_pos
                    yield record, None, last
                return
            except OSError as exc:
                failed_after = max(last, start)
                yield None, str(exc) or type(exc).__name__, failed_after
            if marker is None:
                return  # zstd/lz4 or unknown framing: no safe place to resume
            resume = _find(f, marker, failed_after + 1)
            if resume is None:
                return
            start = resume


def _resync_marker(head: bytes) -> bytes | None:
    if head.startswith(_GZIP_MAGIC):
        return _GZIP_MAGIC
    if head.startswith(_WARC_MAGIC):
        return _WARC_MAGIC
    return None


def _find(f: BinaryIO, marker: bytes, offset: int) -> int | None:
    """Offset of the next ``marker`` at or after ``offset``, reading the file in bounded chunks."""
    f.seek(offset)
    carry = b""
    base = offset
    while chunk := f.read(_SCAN_CHUNK):
        window = carry + chunk
        hit = window.find(marker)
        if hit >= 0:
            return base + hit
        keep = len(marker) - 1
        carry = window[-keep:]
        base += len(window) - len(carry)
    return None


class _WarcFamilyReader(Reader):
    """The record loop shared by WARC and WET; subclasses turn one record into one row."""

    parse_http: ClassVar[bool] = True

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        batcher = RecordBatcher(self.limits)
        for path in unit.paths:
            for row in self._rows(path):
                table = batcher.add(*row)
                if table is not None:
                    yield table
        table = batcher.flush()
        if table is not None:
            yield table

    def _rows(self, path: str) -> Iterator[Row]:
        for record, error, offset in iter_warc_records(path, self.parse_http):
            if record is None:
                yield "", None, f"{path}:{offset}", reasons.with_detail(reasons.MALFORMED_RECORD, error)
                continue
            url = record.headers.get("WARC-Target-URI")
            origin = record.record_id or f"{path}:{record.stream_pos}"
            try:
                text, reason = self._document(record, url)
            except OSError as exc:  # the payload stream broke mid-record
                text, reason = "", reasons.with_detail(reasons.MALFORMED_RECORD, exc)
            yield text, url, origin, reason

    def _document(self, record: Any, url: str | None) -> tuple[str, str | None]:
        raise NotImplementedError

    def _payload(self, record: Any) -> tuple[bytes, str | None]:
        """The record's (remaining) payload, read only if within ``max_record_bytes``."""
        expected = record.content_length
        if expected > self.limits.max_record_bytes:
            return b"", reasons.RECORD_TOO_LARGE  # fastwarc skips the unread payload
        body = record.reader.read(expected)
        if len(body) < expected:
            return b"", reasons.TRUNCATED_RECORD
        return body, None


class WarcOptions(ExtractionOptions):
    """``format: warc`` options: the HTML extractor and what it keeps (see ``ExtractionOptions``)."""


class WarcReader(_WarcFamilyReader):
    """HTML ``response`` records of WARC files (gzip or plain) -> extracted text."""

    format = "warc"
    Options = WarcOptions
    parse_http = True

    def __init__(self, options: ReaderOptions, limits: Limits):
        super().__init__(options, limits)
        self._extract = None  # built on first read: the driver only plans units and needs no extractor

    def _document(self, record: Any, url: str | None) -> tuple[str, str | None]:
        warc = require("fastwarc.warc", "crawl")
        if record.record_type != warc.WarcRecordType.response:
            return "", reasons.NOT_RESPONSE
        if record.http_headers is None:
            return "", reasons.NOT_HTML  # a response without HTTP (dns:, ftp:)
        status = record.http_headers.status_code
        if status is not None and not 200 <= status < 300:
            return "", reasons.with_detail(reasons.HTTP_STATUS, status)
        if (record.http_content_type or "").strip().lower() not in HTML_CONTENT_TYPES:
            return "", reasons.NOT_HTML
        body, reason = self._payload(record)
        if reason is None:
            body, reason = undo_content_encoding(
                body, record.http_headers.get("Content-Encoding"), self.limits.max_record_bytes
            )
        if reason is not None:
            return "", reason
        html = decode_html(body, record.http_charset)
        if self._extract is None:
            self._extract = make_extractor(self.options)
        try:
            text = self._extract(html, url)
        except Exception as exc:  # noqa: BLE001 - an extractor bug on one page must not end the file
            return "", reasons.with_detail(reasons.EXTRACTION_ERROR, f"{type(exc).__name__}: {exc}")
        if not text.strip():
            return "", reasons.EMPTY_TEXT
        return text, None


def undo_content_encoding(body: bytes, coding: str | None, max_bytes: int) -> tuple[bytes, str | None]:
    """Undo an HTTP ``Content-Encoding`` (gzip/deflate), decompressing at most ``max_bytes``.

    Common Crawl stores payloads decoded (the header is renamed ``X-Crawler-Content-Encoding``), but WARCs
    written by other crawlers keep the compressed bytes.
    """
    coding = (coding or "").strip().lower()
    if coding in ("", "identity", "none"):
        return body, None
    if coding not in ("gzip", "x-gzip", "deflate"):
        return b"", reasons.with_detail(reasons.UNSUPPORTED_CONTENT_ENCODING, coding)
    # 47 = auto-detect gzip or zlib header; a raw deflate stream (a common mislabel) needs -15.
    for wbits in (47, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes:
            return b"", reasons.RECORD_TOO_LARGE
        return out, None
    return b"", reasons.with_detail(reasons.UNSUPPORTED_CONTENT_ENCODING, f"corrupt {coding} payload")


class WetReader(_WarcFamilyReader):
    """Text ``conversion`` records of WET files -> documents as they are (no extraction)."""

    format = "wet"
    Options = ReaderOptions
    parse_http = False

    def _document(self, record: Any, url: str | None) -> tuple[str, str | None]:
        warc = require("fastwarc.warc", "crawl")
        if record.record_type != warc.WarcRecordType.conversion:
            return "", reasons.NOT_CONVERSION
        content_type = (record.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "text/plain":
            return "", reasons.NOT_TEXT
        body, reason = self._payload(record)
        if reason is not None:
            return "", reason
        text = decode_text(body)
        if not text.strip():
            return "", reasons.EMPTY_TEXT
        return text, None

"""WARC and WET readers (fastwarc).

Every WARC record becomes one row: HTML responses become documents, everything else (warcinfo, request,
metadata, revisit, non-HTML or non-2xx responses, binary payloads labelled HTML) a rejected row, so the funnel
counts the records of a file. A corrupt stretch of a file (bad header, garbage between records) becomes one
``malformed_record`` row and reading resumes at the next gzip member / ``WARC/`` header, so one bad record does
not lose the rest.

HTTP headers are parsed in fastwarc's quirks mode: old crawls (WARC/0.18 files of the ClueWeb09 era) end their
lines with a bare LF, which the strict parser reads as one long status line, losing the Content-Type.

A document's ``origin`` is its WARC-Record-ID (the same wherever the file is stored); a rejected record's
origin also names the file and the record's offset in it (``path:offset <urn:uuid:...>``), so it can be found.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any, BinaryIO, ClassVar, Iterator, NamedTuple

import pyarrow as pa

from gristmill.core.storage import open_input
from gristmill.stages.base import require
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Reader, ReaderOptions, RecordBatcher, Unit
from gristmill.stages.ingest.encoding import decode_page, decode_utf8
from gristmill.stages.ingest.html import ExtractionOptions, make_extractor

Row = tuple[str, "str | None", str, "str | None", "tuple[str, ...]"]
# What one record gives: (text, reject reason, notes).
Document = tuple[str, "str | None", "tuple[str, ...]"]
# The reason of a Document whose text is a decoded page still to extract (not a reject reason: never in a row).
TO_EXTRACT = "(page to extract)"

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/"  # the version follows: 1.0, 1.1, or 0.17/0.18 in old crawls
_WARC_VERSION_PREFIX = len(b"WARC/1.")
# Payloads that are not text whatever their Content-Type says (checked after any Content-Encoding is undone).
_BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"%PDF-", "pdf"), (b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"), (b"RIFF", "riff"),
    (b"\x00\x00\x01\x00", "ico"), (b"wOFF", "woff"), (b"wOF2", "woff2"), (b"OggS", "ogg"), (b"ID3", "mp3"),
    (b"\x7fELF", "elf"), (b"\xd0\xcf\x11\xe0", "ms-office"), (b"7z\xbc\xaf", "7z"),
)
_BINARY_PREFIXES = tuple(signature for signature, _ in _BINARY_SIGNATURES)  # one startswith for all of them
_BINARY_SNIFF_BYTES = 1024
_HEAD_BYTES = 4096
_SCAN_CHUNK = 1 << 20


def iter_warc_records(path: str, parse_http: bool) -> Iterator[tuple[Any, str | None, int, bool]]:
    """Yield ``(record, None, offset, lenient)`` per record, or ``(None, error, offset, lenient)`` for a corrupt
    stretch; ``lenient`` says the file's WARC headers end lines with a bare LF and were read in quirks mode.

    fastwarc stops at the first unparsable header; we then scan for the next gzip member (``.warc.gz``) or
    version line like the file's first (``WARC/1.``, ``WARC/0.``; plain ``.warc``) after the last good record
    and restart the iterator there. Restarts only move forward, so a file of garbage ends after one scan.
    WARC headers are read strictly unless the file's first header line ends with a bare LF, because quirks mode
    skips garbage between records without a word; HTTP headers are always read leniently (``parse_http``).
    """
    warc = require("fastwarc.warc", "crawl")
    response = warc.WarcRecordType.response
    with open_input(path) as f:  # a local file or an object-store object (seekable either way)
        head = f.read(_HEAD_BYTES)
        marker = _resync_marker(head)
        lenient = _bare_lf_first_line(head)
        start = 0
        while True:
            f.seek(start)
            last = -1
            try:
                for record in warc.ArchiveIterator(f, parse_http=False, quirks_mode=lenient):
                    last = record.stream_pos
                    if parse_http and record.record_type == response:
                        record.parse_http(quirks_mode=True)
                    yield record, None, last, lenient
                return
            except OSError as exc:
                failed_after = max(last, start)
                yield None, str(exc) or type(exc).__name__, failed_after, lenient
            if marker is None:
                return  # zstd/lz4 or unknown framing: no safe place to resume
            resume = _find(f, marker, failed_after + 1)
            if resume is None:
                return
            start = resume


def _bare_lf_first_line(head: bytes) -> bool:
    """Whether the file's first line (``WARC/0.18``...) ends with LF alone, looking into a gzip member."""
    if head.startswith(_GZIP_MAGIC):
        try:
            head = zlib.decompressobj(31).decompress(head, 256)
        except zlib.error:
            return False
    end = head.find(b"\n")
    return head.startswith(_WARC_MAGIC) and end > 0 and head[end - 1:end] != b"\r"


def _resync_marker(head: bytes) -> bytes | None:
    if head.startswith(_GZIP_MAGIC):
        return _GZIP_MAGIC
    if head.startswith(_WARC_MAGIC):
        return head[:_WARC_VERSION_PREFIX]  # "WARC/1." or "WARC/0.": resume at a header of the file's version
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


class _Page(NamedTuple):
    """A record read and decoded whose page is still to be extracted, with what its row needs of the record."""

    html: str
    notes: tuple[str, ...]
    url: str | None
    record_id: str | None
    where: str  # path:offset of the record
    lenient: bool
    truncated: bool  # WARC-Truncated: the crawler cut the payload


class _WarcFamilyReader(Reader):
    """The record loop shared by WARC and WET; subclasses turn one record into one row.

    Records are read a group at a time (``READ_AHEAD_RECORDS``, at most ``READ_AHEAD_BYTES`` of decoded pages
    held), then the group's pages are extracted: fastwarc's loop, the checks and the decoding run back to back, as
    do the extractor's calls, instead of alternating record by record, where each extraction leaves the caches
    cold for the next record (that alternation made the record loop ~1.5x slower). Rows keep the records' order.
    """

    parse_http: ClassVar[bool] = True
    READ_AHEAD_RECORDS: ClassVar[int] = 32
    READ_AHEAD_BYTES: ClassVar[int] = 8 << 20

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
        records = iter_warc_records(path, self.parse_http)
        try:
            first = next(records, None)  # opens the file: a directory or an unreadable file fails here
        except OSError as exc:
            yield (*self.unreadable(path, exc), ())
            return
        group: list[Row | _Page] = []
        held = 0
        for record, error, offset, lenient in itertools.chain([first] if first else [], records):
            row = self._read_record(path, record, error, offset, lenient)
            group.append(row)
            if type(row) is _Page:
                held += len(row.html)
            if len(group) >= self.READ_AHEAD_RECORDS or held >= self.READ_AHEAD_BYTES:
                yield from map(self._finished, group)
                group, held = [], 0
        yield from map(self._finished, group)

    def _read_record(self, path: str, record: Any, error: str | None, offset: int, lenient: bool) -> Row | _Page:
        """The record's row, or its page to extract (``_finished``)."""
        if record is None:
            return "", None, f"{path}:{offset}", reasons.with_detail(reasons.MALFORMED_RECORD, error), ()
        url = record.headers.get("WARC-Target-URI")
        try:
            text, reason, notes = self._document(record, url)
        except OSError as exc:  # the payload stream broke mid-record
            text, reason, notes = "", reasons.with_detail(reasons.MALFORMED_RECORD, exc), ()
        where = f"{path}:{record.stream_pos}"
        truncated = (reason is None or reason is TO_EXTRACT) and bool(record.headers.get("WARC-Truncated"))
        if reason is TO_EXTRACT:
            return _Page(text, notes, url, record.record_id, where, lenient, truncated)
        return _row(text, reason, notes, url, record.record_id, where, lenient, truncated)

    def _finished(self, row: Row | _Page) -> Row:
        if type(row) is not _Page:
            return row
        text, reason, notes = self._extracted(row.html, row.url, row.notes)
        return _row(text, reason, notes, row.url, row.record_id, row.where, row.lenient, row.truncated)

    def _extracted(self, html: str, url: str | None, notes: tuple[str, ...]) -> Document:
        raise NotImplementedError

    def _document(self, record: Any, url: str | None) -> Document:
        """The record as a document, a rejected one, or (reason ``TO_EXTRACT``) its decoded page to extract."""
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


def _row(text: str, reason: str | None, notes: tuple[str, ...], url: str | None, record_id: str | None, where: str,
         lenient: bool, truncated: bool) -> Row:
    """A record's row: a document's origin is its WARC-Record-ID, a rejected record's names the file and offset."""
    if lenient:
        notes = (*notes, reasons.WARC_HEADERS_BARE_LF)
    if reason is None:
        origin = record_id or where
        if truncated:
            notes = (*notes, reasons.PAYLOAD_TRUNCATED_BY_CRAWLER)
    else:
        origin = f"{where} {record_id}" if record_id else where
    return text, url, origin, reason, notes


class WarcOptions(ExtractionOptions):
    """``format: warc`` options: the HTML extractor and what it keeps (see ``ExtractionOptions``)."""


class WarcReader(_WarcFamilyReader):
    """HTML ``response`` records of WARC files (gzip or plain) -> extracted text."""

    name = "ingest.warc_v1"
    format = "warc"
    Params = WarcOptions
    parse_http = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._extract = None  # built on first read: the driver only plans units and needs no extractor

    def _document(self, record: Any, url: str | None) -> Document:
        if record.record_type != require("fastwarc.warc", "crawl").WarcRecordType.response:
            return "", reasons.NOT_RESPONSE, ()
        if record.http_headers is None:
            return "", reasons.NOT_HTML, ()  # a response without HTTP (dns:, ftp:)
        status = record.http_headers.status_code
        if status is not None and not 200 <= status < 300:
            return "", reasons.with_detail(reasons.HTTP_STATUS, status), ()
        if (record.http_content_type or "").strip().lower() not in HTML_CONTENT_TYPES:
            return "", reasons.NOT_HTML, ()
        body, reason = self._payload(record)
        if reason is not None:
            return "", reason, ()
        body, reason, notes = undo_content_encoding(
            body, record.http_headers.get("Content-Encoding"), self.limits.max_record_bytes
        )
        if reason is not None:
            return "", reason, ()
        kind = binary_kind(body)
        if kind is not None:
            return "", reasons.with_detail(reasons.BINARY_PAYLOAD, kind), notes
        decoded = decode_page(body, record.http_charset)
        if decoded.replaced:
            notes = (*notes, reasons.INVALID_BYTES_REPLACED)
        return decoded.text, TO_EXTRACT, notes

    def _extracted(self, html: str, url: str | None, notes: tuple[str, ...]) -> Document:
        if self._extract is None:
            self._extract = make_extractor(self.options)
        try:
            text = self._extract(html, url)
        except Exception as exc:  # noqa: BLE001 - an extractor bug on one page must not end the file
            return "", reasons.with_detail(reasons.EXTRACTION_ERROR, f"{type(exc).__name__}: {exc}"), notes
        if not text or text.isspace():  # (str.strip() would copy the text to find out)
            return "", reasons.EMPTY_TEXT, notes
        return text, None, notes


def binary_kind(body: bytes) -> str | None:
    """What a payload is if it is not text (``png``, ``pdf`` ... or ``nul_bytes``), else None.

    A NUL byte in the first KiB marks binary data too, unless a UTF-16 byte-order mark explains it.
    """
    if body.startswith(_BINARY_PREFIXES):
        return next(kind for signature, kind in _BINARY_SIGNATURES if body.startswith(signature))
    head = body[:_BINARY_SNIFF_BYTES]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "nul_bytes"
    return None


def undo_content_encoding(body: bytes, coding: str | None, max_bytes: int) -> tuple[bytes, str | None, tuple[str, ...]]:
    """Undo an HTTP ``Content-Encoding`` (gzip/deflate), decompressing at most ``max_bytes``:
    ``(body, reject reason, notes)``.

    Common Crawl stores payloads decoded (the header is renamed ``X-Crawler-Content-Encoding``), but WARCs
    written by other crawlers keep the compressed bytes, and some keep the header over a body they stored
    decoded: a body that is no compressed stream at all is used as it is and noted, one that starts as gzip
    but is corrupt is rejected.
    """
    coding = (coding or "").strip().lower()
    if coding in ("", "identity", "none"):
        return body, None, ()
    if coding not in ("gzip", "x-gzip", "deflate"):
        return b"", reasons.with_detail(reasons.UNSUPPORTED_CONTENT_ENCODING, coding), ()
    # 47 = auto-detect gzip or zlib header; a raw deflate stream (a common mislabel) needs -15, and only counts
    # if it ends where the body does: arbitrary bytes rarely inflate cleanly, but they can start to.
    for wbits in (47, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes:
            return b"", reasons.RECORD_TOO_LARGE, ()
        if inflater.eof:
            return out, None, ()
        if wbits == 47:
            # A gzip/zlib stream with a valid header that stops early: the crawler stored a cut payload.
            return out, None, (reasons.COMPRESSED_PAYLOAD_CUT,)
    if body.startswith(b"\x1f\x8b"):
        return b"", reasons.with_detail(reasons.UNSUPPORTED_CONTENT_ENCODING, f"corrupt {coding} payload"), ()
    return body, None, (reasons.CONTENT_ENCODING_NOT_APPLIED,)


class WetReader(_WarcFamilyReader):
    """Text ``conversion`` records of WET files -> documents as they are (no extraction)."""

    name = "ingest.wet_v1"
    format = "wet"
    Params = ReaderOptions
    parse_http = False

    def _document(self, record: Any, url: str | None) -> Document:
        if record.record_type != require("fastwarc.warc", "crawl").WarcRecordType.conversion:
            return "", reasons.NOT_CONVERSION, ()
        content_type = (record.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "text/plain":
            return "", reasons.NOT_TEXT, ()
        body, reason = self._payload(record)
        if reason is not None:
            return "", reason, ()
        decoded = decode_utf8(body)
        notes = (reasons.INVALID_BYTES_REPLACED,) if decoded.replaced else ()
        if not decoded.text.strip():
            return "", reasons.EMPTY_TEXT, notes
        return decoded.text, None, notes

"""Bytes -> str for web pages and text files. Decoding never raises: the worst case is replacement characters,
and the caller learns when that happened (``Decoded.replaced``) so it can be counted."""

from __future__ import annotations

import dataclasses
import re

from gristmill.stages.base import require

# The HTML5 prescan looks for a charset in the first 1024 bytes; old pages put long comments before <meta>.
_META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]+)""",
    re.IGNORECASE,
)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# The WHATWG decoders behind these labels are the vendor supersets (pages labelled Shift_JIS use cp932's NEC
# and IBM extensions); Python's codecs of the same names are the strict standards and would fail on them.
_WHATWG_DECODER = {"shift_jis": "cp932", "euc_kr": "cp949", "big5": "big5hkscs", "gbk": "gb18030"}


@dataclasses.dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the Python codec the text was decoded with
    source: str  # where the encoding came from: "bom", "http", "meta", "detected" (or "default" for text)
    replaced: bool  # bytes invalid in ``encoding`` became U+FFFD


def _encoding_module():
    return require("resiliparse.parse.encoding", "crawl")


def meta_charset(body: bytes) -> str | None:
    """The charset a page declares in ``<meta charset>`` / ``<meta http-equiv content="...; charset=">``."""
    match = _META_CHARSET.search(body, 0, _META_SCAN_BYTES)
    return match.group(1).decode("ascii") if match else None


def decode_html(body: bytes, http_charset: str | None = None) -> str:
    """The text of ``decode_page``."""
    return decode_page(body, http_charset).text


def decode_text(data: bytes) -> str:
    """The text of ``decode_utf8``."""
    return decode_utf8(data).text


def decode_page(body: bytes, http_charset: str | None = None) -> Decoded:
    """Decode an HTML payload: a BOM, then the HTTP header charset, then ``<meta charset>``, then detection
    (uchardet: EUC-JP, Shift-JIS, GBK, Windows-1251 ...); the first that decodes the bytes cleanly wins.

    A declared charset is only trusted if the bytes decode cleanly with it: servers often send a default
    ``charset=utf-8`` for pages written in a legacy encoding. When nothing decodes cleanly, the first candidate
    (declared before detected) is used with replacement characters and ``replaced`` is set.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return _decode(body[len(bom):], codec, "bom")
    enc_mod = _encoding_module()
    candidates: list[tuple[str, str]] = []
    for source in ("http", "meta"):
        # the page is searched for <meta charset> only when the HTTP charset did not decode it
        label = http_charset if source == "http" else meta_charset(body)
        codec = _codec(enc_mod.map_encoding_to_html5(label, fallback_utf8=False)) if label else None
        if codec and all(codec != c for c, _ in candidates):
            candidates.append((codec, source))
            text = _strict(body, codec)
            if text is not None:
                return Decoded(text, codec, source, False)
    try:
        detected = enc_mod.detect_encoding(body)
    except MemoryError:
        detected = None
    detected = _codec(detected)
    if detected and all(detected != c for c, _ in candidates):
        candidates.append((detected, "detected"))
        text = _strict(body, detected)
        if text is not None:
            return Decoded(text, detected, "detected", False)
    codec, source = candidates[0] if candidates else ("utf-8", "detected")
    return _decode(body, codec, source)


def decode_utf8(data: bytes) -> Decoded:
    """UTF-8 with replacement characters for undecodable bytes (plain-text files, WET payloads, JSON lines)."""
    bom = _BOMS[0][0]
    if data.startswith(bom):
        return _decode(data[len(bom):], "utf-8", "bom")
    return _decode(data, "utf-8", "default")


def _codec(name: str | None) -> str | None:
    return _WHATWG_DECODER.get(name, name) if name else None


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _decode(body: bytes, codec: str, source: str) -> Decoded:
    try:
        return Decoded(body.decode(codec), codec, source, False)
    except UnicodeDecodeError:
        return Decoded(body.decode(codec, errors="replace"), codec, source, True)
    except LookupError:
        return _decode(body, "utf-8", source)

"""Bytes -> str for web pages and text files. Decoding never raises: the worst case is replacement characters."""

from __future__ import annotations

from gristmill.stages.base import require


def _encoding_module():
    return require("resiliparse.parse.encoding", "crawl")


def decode_html(body: bytes, http_charset: str | None = None) -> str:
    """Decode an HTML payload: the HTTP header charset, then ``<meta charset>``, then detection (uchardet).

    A declared charset is only trusted if the bytes decode cleanly with it: servers often send a default
    ``charset=utf-8`` for pages written in a legacy encoding, and a strict failure falls through to the page's
    own declaration and then to detection.
    """
    enc_mod = _encoding_module()
    if http_charset:
        declared = enc_mod.map_encoding_to_html5(http_charset, fallback_utf8=False)
        if declared:
            try:
                return _strip_bom(body.decode(declared))
            except (UnicodeDecodeError, LookupError):
                pass
    try:
        # from_html_meta: a readable <meta charset> in the first KiB wins, else uchardet on a sample.
        detected = enc_mod.detect_encoding(body, from_html_meta=True)
        return enc_mod.bytes_to_str(body, detected, errors="replace")
    except (UnicodeError, LookupError, TypeError, MemoryError):
        return decode_text(body)


def decode_text(data: bytes) -> str:
    """UTF-8 with replacement characters for undecodable bytes (plain-text files, WET payloads)."""
    return _strip_bom(data.decode("utf-8", errors="replace"))


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text

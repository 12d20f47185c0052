"""Reject reasons and counter names written by the ingest readers (the funnel counts rows by these strings).

Reasons that carry a detail are written as ``"<reason>: <detail>"``; the part before the colon is the category.
Counter names (``notes``) mark a record that was kept but changed or read leniently; each is counted once per row.
"""

NOT_RESPONSE = "not_response"  # a WARC record that is not a response (warcinfo, request, metadata, revisit ...)
NOT_CONVERSION = "not_conversion"  # a WET record that is not a text conversion
NOT_HTML = "not_html"  # an HTTP response whose Content-Type is not HTML
NOT_TEXT = "not_text"  # a WET conversion whose Content-Type is not text/plain
HTTP_STATUS = "http_status"  # an HTTP response whose status is not 2xx
UNSUPPORTED_CONTENT_ENCODING = "unsupported_content_encoding"  # payload compressed with a coding we cannot undo
RECORD_TOO_LARGE = "record_too_large"  # raw record larger than Limits.max_record_bytes; not read
TRUNCATED_RECORD = "truncated_record"  # payload shorter than its declared length (the file was cut)
MALFORMED_RECORD = "malformed_record"  # the container could not be parsed here (bad header, corrupt stream)
EXTRACTION_ERROR = "extraction_error"  # the HTML extractor raised
EMPTY_TEXT = "empty_text"  # nothing but white space after decoding / extraction
MALFORMED_JSON = "malformed_json"
MISSING_TEXT_FIELD = "missing_text_field"  # text field absent, null or not a string
BINARY_FILE = "binary_file"  # a NUL byte in a text-format file
BINARY_PAYLOAD = "binary_payload"  # an HTML-labelled payload that is an image, PDF, archive ... (detail: the kind)
READ_ERROR = "read_error"  # the file could not be opened or read


def with_detail(reason: str, detail: object) -> str:
    """``reason: detail`` on one line, bounded so one odd message cannot bloat the stats."""
    text = " ".join(str(detail).split())
    return f"{reason}: {text[:200]}" if text else reason


# --- counters: kept records that were changed or read leniently ----------------------------------------------
INVALID_BYTES_REPLACED = "invalid_bytes_replaced"  # bytes invalid in the page's/file's encoding became U+FFFD
CONTENT_ENCODING_NOT_APPLIED = "content_encoding_not_applied"  # labelled gzip/deflate, but the body is plain
PAYLOAD_TRUNCATED_BY_CRAWLER = "payload_truncated_by_crawler"  # ``WARC-Truncated``: the crawler cut the payload
WARC_HEADERS_BARE_LF = "warc_headers_bare_lf"  # read in quirks mode: garbage between records is skipped unseen
COMPRESSED_PAYLOAD_CUT = "compressed_payload_cut"  # a gzip/deflate payload that ends before its stream does

"""HTML -> plain text. Two extractors behind one call signature: ``extract(html, url) -> str``.

``resiliparse`` (default) is a C++ DOM walk with main-content heuristics, ~100x faster than ``trafilatura``
(a Python/lxml readability-style extractor); see benchmarks/ingest.py for speed and token-F1 on 181 labelled
article pages.
"""

from __future__ import annotations

from typing import Callable, Literal

from gristmill.stages.base import require
from gristmill.stages.ingest.base import ReaderOptions

ExtractorName = Literal["resiliparse", "trafilatura"]
Extract = Callable[[str, "str | None"], str]


class ExtractionOptions(ReaderOptions):
    """What to keep of a page. Defaults favour clean prose for language modelling.

    ``main_content`` drops navigation, headers, footers and sidebars. Image alt texts ("logo", "photo by ...")
    and link targets are mostly noise; user-comment sections and post metadata (author/date bylines) are
    boilerplate that repeats across a site. Paragraph breaks are always kept: line-level cleaning needs them.
    """

    extractor: ExtractorName = "resiliparse"
    main_content: bool = True
    list_bullets: bool = True
    alt_texts: bool = False
    links: bool = False
    comments: bool = False
    post_meta: bool = False


def make_extractor(options: ExtractionOptions) -> Extract:
    if options.extractor == "trafilatura":
        return _trafilatura_extractor(options)
    return _resiliparse_extractor(options)


def _resiliparse_extractor(options: ExtractionOptions) -> Extract:
    html_mod = require("resiliparse.parse.html", "crawl")
    text_mod = require("resiliparse.extract.html2text", "crawl")
    parse = html_mod.HTMLTree.parse
    extract_plain_text = text_mod.extract_plain_text

    def extract(html: str, url: str | None = None) -> str:
        return extract_plain_text(
            parse(html),
            preserve_formatting=True,
            main_content=options.main_content,
            list_bullets=options.list_bullets,
            alt_texts=options.alt_texts,
            links=options.links,
            comments=options.comments,
            post_meta=options.post_meta,
        )

    return extract


def _trafilatura_extractor(options: ExtractionOptions) -> Extract:
    trafilatura = require("trafilatura", "trafilatura")
    _quiet_trafilatura_logs()

    def extract(html: str, url: str | None = None) -> str:
        text = trafilatura.extract(
            html,
            url=url,
            # trafilatura has no "whole page" mode; main_content=False asks it for recall over precision.
            favor_recall=not options.main_content,
            include_comments=options.comments,
            include_links=options.links,
            include_images=options.alt_texts,
            include_tables=True,
            deduplicate=False,
            with_metadata=False,
        )
        return text or ""

    return extract


def _quiet_trafilatura_logs() -> None:
    # trafilatura logs a warning per page it finds too short/empty; on a crawl that floods the worker logs.
    import logging

    for name in ("trafilatura", "htmldate", "courlan"):
        logging.getLogger(name).setLevel(logging.ERROR)

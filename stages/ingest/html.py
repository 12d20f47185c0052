"""HTML -> plain text. Three extractors behind one call signature: ``extract(html, url) -> str``.

``resiliparse`` (default) is a C++ DOM walk with main-content heuristics, ~10x faster than ``trafilatura``
(a Python/lxml readability-style extractor). ``resiliparse_fallback`` runs resiliparse with boilerplate
selectors skipped, checks the result, and re-extracts with trafilatura only the pages that fail the check.
See benchmarks/extraction.py for speed, token precision/recall/F1 of each on 181 labelled article pages, and
how well the selectors and thresholds below hold up on pages they were not chosen on.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Literal, NamedTuple

from pydantic import Field

from gristmill.stages.base import require
from gristmill.stages.ingest.base import ReaderOptions

ExtractorName = Literal["resiliparse", "trafilatura", "resiliparse_fallback"]
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
    # resiliparse_fallback: a page whose extract has at least this share of short lines, or at least this share
    # of lines that occur more than once, goes to trafilatura. A share above 1 turns that test off.
    fallback_short_line_share: float = Field(default=0.55, ge=0.0)
    fallback_repeated_line_share: float = Field(default=0.4, ge=0.0)


# Page furniture that resiliparse's main-content heuristics keep: site headers/footers, photo captions and
# credits, share bars, related-article lists, newsletter boxes, cookie-consent banners, author bios. Each
# selector raised token F1 on its own on the article benchmark; broader ones (sidebar, widget, author, meta,
# ad-, promo, summary, more, card) removed article text and are left out. Chosen on the benchmark's own pages:
# benchmarks/extraction.py reruns that choice on half the pages and scores it on the other half.
BOILERPLATE_SELECTORS = (
    "header",
    "footer",
    "[class*=footer]",
    "[class*=caption]",
    "[class*=credit]",
    "[class*=share]",
    "[class*=related]",
    "[class*=newsletter]",
    "[class*=consent]",
    "[class*=cookie]",
    "[class*=popup]",
    "[class*=photo]",
    "[class*=media]",
    "[class*=bio]",
    "[class*=banner]",
)
# A line of fewer words than this is menu, byline, caption or button text rather than prose.
SHORT_LINE_WORDS = 6


class LineShares(NamedTuple):
    """What the fallback check reads off an extract's non-blank lines."""

    short: float  # share with fewer than SHORT_LINE_WORDS words
    repeated: float  # share whose text (stripped) occurs on another line too: share bars, "Read more" teasers


def line_shares(text: str) -> LineShares:
    """Shares of the non-blank lines of ``text`` that are short and that repeat; both 1.0 for no lines."""
    lines = [line for line in map(str.strip, text.splitlines()) if line]
    if not lines:
        return LineShares(1.0, 1.0)
    # split at most SHORT_LINE_WORDS - 1 times: a long line is not split into all of its words
    short = sum(len(line.split(None, SHORT_LINE_WORDS - 1)) < SHORT_LINE_WORDS for line in lines)
    once = sum(n == 1 for n in Counter(lines).values())
    return LineShares(short / len(lines), (len(lines) - once) / len(lines))


def needs_fallback(text: str, options: ExtractionOptions) -> bool:
    """Whether resiliparse_fallback re-extracts this page with trafilatura."""
    shares = line_shares(text)
    return (
        shares.short >= options.fallback_short_line_share
        or shares.repeated >= options.fallback_repeated_line_share
    )


def make_extractor(options: ExtractionOptions) -> Extract:
    if options.extractor == "trafilatura":
        return _trafilatura_extractor(options)
    if options.extractor == "resiliparse_fallback":
        return _resiliparse_fallback_extractor(options)
    return _resiliparse_extractor(options)


def short_line_share(text: str) -> float:
    """Share of the non-blank lines of ``text`` with fewer than SHORT_LINE_WORDS words; 1.0 for no lines."""
    return line_shares(text).short


def _resiliparse_fallback_extractor(options: ExtractionOptions) -> Extract:
    """resiliparse without BOILERPLATE_SELECTORS; trafilatura for the pages that fail ``needs_fallback``.

    Mostly-short-line extracts are where resiliparse kept navigation, bylines and teaser lists (or found
    nothing); many repeated lines are a listing page's per-item buttons. trafilatura costs ~10x more per page,
    so only those pages pay for it.
    """
    resiliparse = _resiliparse_extractor(options, skip_elements=list(BOILERPLATE_SELECTORS))
    trafilatura = _trafilatura_extractor(options, fast=True)

    def extract(html: str, url: str | None = None) -> str:
        text = resiliparse(html, url)
        if not needs_fallback(text, options):
            return text
        return trafilatura(html, url)

    return extract


def _resiliparse_extractor(options: ExtractionOptions, skip_elements: list[str] | None = None) -> Extract:
    html_mod = require("resiliparse.parse.html", "crawl")
    text_mod = require("resiliparse.extract.html2text", "crawl")
    parse = html_mod.HTMLTree.parse
    extract_plain_text = text_mod.extract_plain_text

    kwargs = dict(resiliparse_kwargs(options), skip_elements=skip_elements)

    def extract(html: str, url: str | None = None) -> str:
        return extract_plain_text(parse(html), **kwargs)

    return extract


def resiliparse_kwargs(options: ExtractionOptions) -> dict:
    """``extract_plain_text``'s arguments for ``options`` (less ``skip_elements``)."""
    return dict(
        preserve_formatting=True,
        main_content=options.main_content,
        list_bullets=options.list_bullets,
        alt_texts=options.alt_texts,
        links=options.links,
        comments=options.comments,
        post_meta=options.post_meta,
    )


def _trafilatura_extractor(options: ExtractionOptions, fast: bool = False) -> Extract:
    """``fast`` skips trafilatura's second-opinion extractors (readability, jusText): ~1.5x faster."""
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
            fast=fast,
        )
        return text or ""

    return extract


def _quiet_trafilatura_logs() -> None:
    # trafilatura logs a warning per page it finds too short/empty; on a crawl that floods the worker logs.
    import logging

    for name in ("trafilatura", "htmldate", "courlan"):
        logging.getLogger(name).setLevel(logging.ERROR)

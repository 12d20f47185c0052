"""HTML -> plain text. Three extractors behind one call signature: ``extract(html, url) -> str``.

``resiliparse`` (default) is a C++ DOM walk with main-content heuristics, ~10x faster than ``trafilatura``
(a Python/lxml readability-style extractor). ``resiliparse_fallback`` runs resiliparse with boilerplate
selectors skipped (again without them when they left almost nothing), drops the headline and the short lines
around the article, checks the result, and re-extracts with trafilatura only the pages that fail the check.
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
    # of lines that occur more than once, goes to trafilatura. A share above 1 turns that test off: the short-line
    # test is off by default (with the edge lines trimmed, 0.55 sends 2x the pages to trafilatura for +0.001 F1
    # on the benchmark); an empty extract has both shares 1.0 and always falls back.
    fallback_short_line_share: float = Field(default=1.01, ge=0.0)
    fallback_repeated_line_share: float = Field(default=0.4, ge=0.0)


# Page furniture that resiliparse's main-content heuristics keep: site headers, footers, photo captions, photo
# and media boxes, newsletter and cookie-consent boxes, widgets, author boxes. Chosen on the article benchmark's
# own pages: each raised mean token F1 by more than 0.0005 on its own (a [class*=...] selector costs ~0.02 ms a
# page), measured with article_text's re-extraction of pages a selector empties. Broader ones (sidebar, meta, ad-,
# promo, summary, more, card) removed article text; share, related, credit, cookie, popup, bio and banner gained
# less than their time once the short lines around the article are dropped. benchmarks/extraction.py reruns that
# choice on half the pages and scores it on the other half.
BOILERPLATE_SELECTORS = (
    "header",
    "[class*=footer]",
    "[class*=caption]",
    "[class*=newsletter]",
    "[class*=consent]",
    "[class*=photo]",
    "[class*=media]",
    "[class*=widget]",
    "[class*=author]",
)
# A line of fewer words than this is menu, byline, caption or button text rather than prose.
SHORT_LINE_WORDS = 6
# An extract of fewer words than this, with BOILERPLATE_SELECTORS skipped, means a selector matched the article's
# own container (a class such as "post-media-wrapper" around the whole story): the page is extracted again without
# the selectors. Those extracts keep a line or two (a date, a "Share" button), never a paragraph of prose.
MIN_ARTICLE_WORDS = 50
# A line that is a part of the page's <title> is the headline (or the site's name) only from this many words on;
# shorter parts ("News", "Home") can be article text too.
MIN_TITLE_LINE_WORDS = 3


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
    """``article_text`` with BOILERPLATE_SELECTORS; trafilatura for the pages that fail ``needs_fallback``.

    Many repeated lines are a listing page's per-item buttons, an empty extract a page resiliparse found
    nothing in; mostly-short-line extracts (navigation, teaser lists) only when that test is turned on.
    trafilatura costs ~10x more per page, so only those pages pay for it.
    """
    parse = require("resiliparse.parse.html", "crawl").HTMLTree.parse
    extract_plain_text = require("resiliparse.extract.html2text", "crawl").extract_plain_text
    kwargs = resiliparse_kwargs(options)
    selectors = list(BOILERPLATE_SELECTORS)
    trafilatura = _trafilatura_extractor(options, fast=True)

    def extract(html: str, url: str | None = None) -> str:
        text = article_text(parse(html), extract_plain_text, kwargs, selectors)
        if not needs_fallback(text, options):
            return text
        return trafilatura(html, url)

    return extract


def article_text(tree, extract_plain_text: Callable, kwargs: dict, selectors: list[str]) -> str:
    """resiliparse_fallback's own extract of a parsed page, before the fallback check.

    ``selectors`` skipped, or none when that leaves fewer than MIN_ARTICLE_WORDS words; then the headline and
    the short lines before and after the article dropped (``tidy_article``).
    """
    text = extract_plain_text(tree, skip_elements=selectors or None, **kwargs)
    if selectors and len(text.split(None, MIN_ARTICLE_WORDS)) < MIN_ARTICLE_WORDS:
        text = extract_plain_text(tree, **kwargs)
    return tidy_article(text, page_titles(tree))


def page_titles(tree) -> tuple[str, str]:
    """The page's ``<title>`` and its first ``<h1>``, whitespace collapsed ("" where it has none)."""
    heading = tree.body.query_selector("h1") if tree.body is not None else None
    return " ".join((tree.title or "").split()), " ".join(heading.text.split()) if heading is not None else ""


def tidy_article(text: str, titles: tuple[str, str]) -> str:
    """``text`` less its headline lines and the short lines before its first and after its last long line.

    resiliparse keeps the article's ``<h1>`` (the headline is page metadata, not body text: trafilatura leaves
    it out too) and, around the article, single short lines its main-content pass did not recognise:
    "Image 1 of 23", a date, "Skip to content" before; "Comments", "Feedback", "Newsletter" after. A headline is
    a line equal to the first ``<h1>`` or a part of ``<title>`` (which adds the site's name) of at least
    MIN_TITLE_LINE_WORDS words. An extract without a long line is returned as it is: the fallback check judges it.
    """
    title, heading = titles
    lines = [line for line in text.split("\n") if not _is_headline(line.strip(), title, heading)]
    # from both ends only: the article's inner short lines (subheadings, list items) stay
    first = next((i for i, line in enumerate(lines) if _is_long(line)), None)
    if first is None:
        return "\n".join(lines)
    last = next(i for i in range(len(lines) - 1, first - 1, -1) if _is_long(lines[i]))
    return "\n".join(lines[first : last + 1])


def _is_long(line: str) -> bool:
    return len(line.split(None, SHORT_LINE_WORDS - 1)) >= SHORT_LINE_WORDS


def _is_headline(line: str, title: str, heading: str) -> bool:
    if not line:
        return False
    if line == heading:
        return True
    return line in title and len(line.split(None, MIN_TITLE_LINE_WORDS - 1)) >= MIN_TITLE_LINE_WORDS


def _resiliparse_extractor(options: ExtractionOptions) -> Extract:
    parse = require("resiliparse.parse.html", "crawl").HTMLTree.parse
    extract_plain_text = require("resiliparse.extract.html2text", "crawl").extract_plain_text
    kwargs = resiliparse_kwargs(options)

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

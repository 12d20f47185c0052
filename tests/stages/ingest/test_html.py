from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from gristmill.stages.ingest.encoding import decode_html
from gristmill.stages.ingest.html import (
    BOILERPLATE_SELECTORS,
    MIN_ARTICLE_WORDS,
    ExtractionOptions,
    line_shares,
    make_extractor,
    resiliparse_kwargs,
    short_line_share,
    tidy_article,
)

LABELLED = Path(__file__).parents[2] / "data" / "html"
# A quotes listing: resiliparse keeps every quote, each followed by the same share-button line; the labelled
# article is the first quote only.
LISTING = "b3c19dd5f0612d098788fa5173e491b3280da6226b492f8fe110f4ab1896cca8"
# An article listing offers: half of its extract's lines are short (item titles, links), none repeats, and
# resiliparse's extract is the labelled text but for the headline above it and a bare link below it.
OFFERS = "20b2b64916b00b25203c9f1bf14248922f4d522f18328e9f876cce116df0083e"
OFFERS_HEADLINE = "Black Friday per nostalgici: le occasioni da non perdere"

PROSE = (
    "The river rose during the night and by morning the lower streets of the town were under water. "
    "Volunteers filled sandbags at the church while the council opened the school as a shelter for families. "
)
# An article whose extract is mostly one-to-three-word lines: a menu and teaser list resiliparse keeps.
MENU_PAGE = (
    "<html><head><title>Flood</title></head><body><div class='content'>"
    + "".join(f"<div>Section {i}</div>" for i in range(30))
    + f"<article><h1>Flood</h1><p>{PROSE * 3}</p></article>"
    + "".join(f"<div><a href='/t{i}'>Teaser {i}</a></div>" for i in range(30))
    + "</div></body></html>"
)
PROSE_PAGE = f"<html><body><article><h1>Flood</h1><p>{PROSE * 3}</p><p>{PROSE * 2}</p></article></body></html>"
# A listing: every quote followed by the same share link, so that almost half of the extract's lines repeat.
QUOTES = [f"Quote number {i}: the river rose during the night and the town woke up under water." for i in range(8)]
LISTING_PAGE = (
    "<html><head><title>Quotes about floods</title></head><body><h1>Quotes about floods</h1>"
    + "".join(f"<div><p>{q}</p><p><a href='/s{i}'>Share on Facebook</a></p></div>" for i, q in enumerate(QUOTES))
    + "</body></html>"
)


def labelled_page(key: str) -> tuple[str, str]:
    html = decode_html(gzip.decompress((LABELLED / f"{key}.html.gz").read_bytes()))
    return html, json.loads((LABELLED / "ground-truth.json").read_text(encoding="utf-8"))[key]["articleBody"]


def token_f1(predicted: str, gold: str) -> float:
    pred, ref = Counter(predicted.split()), Counter(gold.split())
    overlap = sum((pred & ref).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(pred.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def first_pass(options: ExtractionOptions):
    """The mode's resiliparse extract, before any fallback."""
    never = {"fallback_short_line_share": float("inf"), "fallback_repeated_line_share": float("inf")}
    return make_extractor(options.model_copy(update=never))


def test_line_shares_count_short_and_repeated_non_blank_lines():
    text = "Share on Facebook\nsix words make a long line\n\nShare on Facebook \nanother line of six words here\n"
    assert line_shares(text) == (0.5, 0.5)
    assert line_shares("") == (1.0, 1.0)


def test_fallback_mode_sends_a_listing_whose_share_buttons_repeat_to_trafilatura():
    options = ExtractionOptions(extractor="resiliparse_fallback")
    html, gold = labelled_page(LISTING)
    resiliparse = first_pass(options)(html, None)
    shares = line_shares(resiliparse)
    assert shares.short < 0.55 < 1 < options.fallback_short_line_share  # the repeated lines, not the short ones
    assert shares.repeated >= options.fallback_repeated_line_share
    assert token_f1(resiliparse, gold) < 0.5
    assert token_f1(make_extractor(options)(html, None), gold) > 0.95


def test_fallback_mode_keeps_resiliparse_for_an_article_with_many_short_lines_and_no_repeats():
    options = ExtractionOptions(extractor="resiliparse_fallback")
    html, gold = labelled_page(OFFERS)
    resiliparse = first_pass(options)(html, None)
    shares = line_shares(resiliparse)
    assert 0.45 < shares.short < 0.55 and shares.repeated == 0.0  # kept even with the short-line test on
    assert make_extractor(options)(html, None) == resiliparse
    assert token_f1(resiliparse, gold) > 0.99


def test_fallback_mode_drops_the_headline_and_the_link_line_that_plain_resiliparse_keeps_around_an_article():
    html, gold = labelled_page(OFFERS)
    plain = make_extractor(ExtractionOptions())(html, None)
    tuned = first_pass(ExtractionOptions(extractor="resiliparse_fallback"))(html, None)
    assert plain.splitlines()[0] == OFFERS_HEADLINE and OFFERS_HEADLINE not in tuned
    assert plain.rstrip().splitlines()[-1] == "http://amzn.to/2A6mxCW" and "2A6mxCW" not in tuned
    assert token_f1(plain, gold) < 0.99 < token_f1(tuned, gold)


def test_tidy_article_drops_headlines_and_short_lines_at_either_end_only():
    titles = ("Flood closes the high street - Daily Example", "Flood closes the high street")
    body = f"{PROSE}\n\nWhat the council said\n\nDaily Example\n\n{PROSE}"
    text = f"Image 1 of 23\n\nFlood closes the high street\n\nDaily Example\n\n{body}\n\nComments\nFeedback\n"
    # a subheading and a short part of the title inside the article stay; a one-word heading is the headline
    assert tidy_article(text, titles) == body
    assert tidy_article(f"Flood\n\n{PROSE}", ("Flood - Daily Example", "Flood")) == PROSE
    assert tidy_article("Home\nNews\nSport", titles) == "Home\nNews\nSport"  # no long line: kept for the check


def test_fallback_mode_extracts_again_without_selectors_that_matched_the_article_itself():
    # "post-media-wrapper" matches [class*=media], one of the boilerplate selectors, around the whole article
    page = f"<html><body><div class='post-media-wrapper'><article><p>{PROSE * 3}</p></article></div></body></html>"
    parse = pytest.importorskip("resiliparse.parse.html").HTMLTree.parse
    extract_plain_text = pytest.importorskip("resiliparse.extract.html2text").extract_plain_text
    options = ExtractionOptions(extractor="resiliparse_fallback")
    skipped = extract_plain_text(parse(page), skip_elements=list(BOILERPLATE_SELECTORS), **resiliparse_kwargs(options))
    assert len(skipped.split()) < MIN_ARTICLE_WORDS
    assert first_pass(options)(page, None).strip() == (PROSE * 3).strip()


def test_short_line_share_counts_non_blank_lines_and_empty_text_fails():
    assert short_line_share("one two\n\nsix words make a long line\n") == 0.5
    assert short_line_share("") == 1.0


def test_fallback_mode_keeps_resiliparse_for_prose_and_uses_trafilatura_for_a_listing_page():
    options = ExtractionOptions(extractor="resiliparse_fallback")
    resiliparse_only = first_pass(options)
    trafilatura = make_extractor(ExtractionOptions(extractor="trafilatura"))
    extract = make_extractor(options)

    assert line_shares(resiliparse_only(LISTING_PAGE, None)).repeated >= options.fallback_repeated_line_share
    assert extract(LISTING_PAGE, None) != resiliparse_only(LISTING_PAGE, None)
    assert extract(LISTING_PAGE, None).strip() == trafilatura(LISTING_PAGE, None).strip()
    assert "Share on Facebook" not in extract(LISTING_PAGE, None) and QUOTES[7] in extract(LISTING_PAGE, None)

    assert short_line_share(resiliparse_only(PROSE_PAGE, None)) < options.fallback_short_line_share
    assert extract(PROSE_PAGE, None) == resiliparse_only(PROSE_PAGE, None)


def test_fallback_mode_sends_short_line_pages_to_trafilatura_only_when_asked_and_empty_ones_always():
    # short paragraphs only (an opening-hours page): resiliparse separates them by blank lines, trafilatura not
    menu_only = "<html><body>" + "".join(f"<p>Room {i} open</p>" for i in range(30)) + "</body></html>"
    by_default = ExtractionOptions(extractor="resiliparse_fallback")
    resiliparse = first_pass(by_default)(menu_only, None)
    assert line_shares(resiliparse).short == 1.0 and line_shares(resiliparse).repeated == 0.0
    assert make_extractor(by_default)(menu_only, None) == resiliparse
    trafilatura = make_extractor(ExtractionOptions(extractor="trafilatura"))
    asked = by_default.model_copy(update={"fallback_short_line_share": 0.55})
    assert make_extractor(asked)(menu_only, None) == trafilatura(menu_only, None) != resiliparse
    empty = f"<html><body><script>var x = 1;</script><noscript>{PROSE}</noscript></body></html>"
    assert first_pass(by_default)(empty, None) == ""
    assert make_extractor(by_default)(empty, None) == trafilatura(empty, None)


def test_fallback_mode_drops_the_menu_and_teasers_around_an_article_without_trafilatura():
    plain = make_extractor(ExtractionOptions())(MENU_PAGE, None)
    options = ExtractionOptions(extractor="resiliparse_fallback")
    tuned = make_extractor(options)(MENU_PAGE, None)
    assert "Section 7" in plain and "Teaser 7" in plain
    assert tuned == first_pass(options)(MENU_PAGE, None) == (PROSE * 3).strip()


def test_fallback_mode_skips_page_furniture_that_plain_resiliparse_keeps():
    # between the article's paragraphs, where dropping the short lines around the article does not reach
    page = (
        "<html><body><article><header><h1>Flood</h1><p>By Staff Reporter, November 20</p></header>"
        f"<p>{PROSE * 3}</p>"
        "<div class='caption'>The flooded high street at dawn. Photo: Staff Photographer</div>"
        "<div class='newsletter-signup'>Sign up for our daily newsletter and get the morning news first</div>"
        "<div class='author-box'>Staff Reporter covers the town council and the river authority</div>"
        f"<p>{PROSE * 2}</p></article></body></html>"
    )
    plain = make_extractor(ExtractionOptions())(page, None)
    tuned = make_extractor(ExtractionOptions(extractor="resiliparse_fallback"))(page, None)
    for furniture in ("By Staff Reporter", "Photo: Staff Photographer", "daily newsletter", "river authority"):
        assert furniture in plain and furniture not in tuned
    assert tuned == f"{(PROSE * 3).strip()}\n\n{(PROSE * 2).strip()}"


def test_fallback_mode_is_selected_from_pipeline_yaml(tmp_path):
    from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
    from gristmill.pipeline.inspection import connect

    crawl = tmp_path / "pages.warc.gz"
    with open(crawl, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, page in [("https://example.org/quotes", LISTING_PAGE), ("https://example.org/prose", PROSE_PAGE)]:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            payload = io.BytesIO(page.encode())
            writer.write_record(writer.create_warc_record(url, "response", payload=payload, http_headers=http))
    spec = parse_pipeline(f"""
name: extraction
inputs:
  - source: common_crawl
    format: warc
    paths: ["{crawl}"]
    options: {{extractor: resiliparse_fallback, fallback_short_line_share: 0.5, fallback_repeated_line_share: 0.4}}
execution: {{executor: local}}
""")
    run_dir = tmp_path / "run"
    run_plan(build_plan(spec, tmp_path), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    texts = dict(connect(run_dir).execute("SELECT url, text FROM documents").fetchall())
    trafilatura = make_extractor(ExtractionOptions(extractor="trafilatura"))
    assert texts["https://example.org/quotes"].strip() == trafilatura(LISTING_PAGE, None).strip()
    assert "Share on Facebook" not in texts["https://example.org/quotes"]


@pytest.mark.parametrize("key", ["fallback_short_line_share", "fallback_repeated_line_share"])
def test_fallback_shares_must_not_be_negative(key):
    with pytest.raises(ValueError, match=key):
        ExtractionOptions(extractor="resiliparse_fallback", **{key: -0.1})

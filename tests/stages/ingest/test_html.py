from __future__ import annotations

import io

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from gristmill.stages.ingest.html import ExtractionOptions, make_extractor, short_line_share

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


def test_short_line_share_counts_non_blank_lines_and_empty_text_fails():
    assert short_line_share("one two\n\nsix words make a long line\n") == 0.5
    assert short_line_share("") == 1.0


def test_fallback_mode_keeps_resiliparse_for_prose_and_uses_trafilatura_for_a_menu_page():
    options = ExtractionOptions(extractor="resiliparse_fallback")
    resiliparse_only = make_extractor(options.model_copy(update={"fallback_short_line_share": float("inf")}))
    trafilatura = make_extractor(ExtractionOptions(extractor="trafilatura"))
    extract = make_extractor(options)

    assert short_line_share(resiliparse_only(MENU_PAGE, None)) >= options.fallback_short_line_share
    assert extract(MENU_PAGE, None) != resiliparse_only(MENU_PAGE, None)
    assert extract(MENU_PAGE, None).strip() == trafilatura(MENU_PAGE, None).strip()
    assert "Section 7" not in extract(MENU_PAGE, None) and PROSE.split()[0] in extract(MENU_PAGE, None)

    assert short_line_share(resiliparse_only(PROSE_PAGE, None)) < options.fallback_short_line_share
    assert extract(PROSE_PAGE, None) == resiliparse_only(PROSE_PAGE, None)


def test_fallback_mode_skips_page_furniture_that_plain_resiliparse_keeps():
    page = (
        "<html><body><article><header><h1>Flood</h1><p>By Staff Reporter, November 20</p></header>"
        "<div class='caption'>The flooded high street at dawn. Photo: Staff Photographer</div>"
        "<div class='share-bar'>Share on Facebook Share via Email</div>"
        f"<p>{PROSE * 3}</p><p>{PROSE * 2}</p></article></body></html>"
    )
    plain = make_extractor(ExtractionOptions())(page, None)
    tuned = make_extractor(ExtractionOptions(extractor="resiliparse_fallback"))(page, None)
    for furniture in ("By Staff Reporter", "Photo: Staff Photographer", "Share via Email"):
        assert furniture in plain and furniture not in tuned
    assert PROSE.strip() in tuned


def test_fallback_mode_is_selected_from_pipeline_yaml(tmp_path):
    from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
    from gristmill.pipeline.inspection import connect

    crawl = tmp_path / "pages.warc.gz"
    with open(crawl, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, page in [("https://example.org/menu", MENU_PAGE), ("https://example.org/prose", PROSE_PAGE)]:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            payload = io.BytesIO(page.encode())
            writer.write_record(writer.create_warc_record(url, "response", payload=payload, http_headers=http))
    spec = parse_pipeline(f"""
name: extraction
inputs:
  - source: common_crawl
    format: warc
    paths: ["{crawl}"]
    options: {{extractor: resiliparse_fallback, fallback_short_line_share: 0.5}}
execution: {{executor: local}}
""")
    run_dir = tmp_path / "run"
    run_plan(build_plan(spec, tmp_path), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    texts = dict(connect(run_dir).execute("SELECT url, text FROM documents").fetchall())
    trafilatura = make_extractor(ExtractionOptions(extractor="trafilatura"))
    assert texts["https://example.org/menu"].strip() == trafilatura(MENU_PAGE, None).strip()
    assert "Section 7" not in texts["https://example.org/menu"]


def test_fallback_share_must_not_be_negative():
    with pytest.raises(ValueError, match="fallback_short_line_share"):
        ExtractionOptions(extractor="resiliparse_fallback", fallback_short_line_share=-0.1)

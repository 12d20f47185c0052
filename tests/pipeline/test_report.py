"""report.html: the figures equal DuckDB queries over the run directory, sections follow the data that exists,
the page is self-contained, and headless Chromium renders its charts without a network request."""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from demo_pipeline import DEMO

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, run_plan
from gristmill.pipeline.inspection import connect
from gristmill.pipeline.report import write_report
from gristmill.pipeline.spec import load_pipeline, parse_pipeline

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Stages of the later pipeline steps register when their modules are imported.
LATER_STAGES = ["gristmill.stages.lang.fasttext_lid", "gristmill.stages.quality.heuristics", "gristmill.stages.quality.fasttext_quality",
                "gristmill.dedup.stages", "gristmill.stages.tokenize.train", "gristmill.stages.tokenize.encode", "gristmill.mixtures.stages"]

# DEMO's inputs, plus one more source (below).
FULL = DEMO.split("steps:")[0].replace("name: demo-test", "name: report-full") + """\
  # The same three files again: near-duplicate clusters of size 2 (dedup keeps the github copies).
  - source: stackexchange
    format: text
    paths: ["{data}/python-stdlib/abc.py", "{data}/python-stdlib/bisect.py", "{data}/python-stdlib/glob.py"]
steps:
  - stage: clean.normalize_v1
  - stage: clean.boilerplate_v1
    params: {{sources: [common_crawl]}}
  - stage: lang.fasttext_v1
  - stage: quality.heuristics_v1
  - stage: quality.fasttext_v1
    params: {{model: "{quality_model}"}}
  - filter: {{all: [{{col: text, ne: ""}}, {{col: lang_score, ge: 0.3}}, {{col: q_word_count, ge: 20}}]}}
  - stage: dedup.minhash_v1
  - stage: tokenizer.train_bbpe_v1
    params: {{vocab_size: 400}}
  - stage: tokenize.bbpe_v1
  - stage: mixture.pack_v1
    params: {{ratios: {{common_crawl: 0.6, github: 0.4}}, seq_len: 64, rows_per_shard: 32,
             default_max_epochs: 3}}
output:
  rejects: true
execution:
  executor: local
"""


class _Page(HTMLParser):
    """Rows with data-* attributes per table class, section ids, and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.sections: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [v for k, v in attrs if k in ("src", "href", "xlink:href", "action", "poster") and v]
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table":
            self._table = " ".join(sorted((a.get("class") or "").split())) or "table"
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table and any(k.startswith("data-") for k in a):
            self.tables[self._table].append({k[5:]: v for k, v in a.items() if k.startswith("data-")})


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def table(page: _Page, cls: str) -> list[dict]:
    return next(rows for name, rows in page.tables.items() if cls in name.split())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """examples/crawl-clean.yaml (the demo's ingest and clean) as shipped, on the local executor."""
    spec, base = load_pipeline(REPO / "examples" / "crawl-clean.yaml")
    spec = spec.model_copy(update={"execution": spec.execution.model_copy(update={"executor": "local"})})
    run_dir = tmp_path_factory.mktemp("report-demo")
    run_plan(build_plan(spec, base), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    write_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_dir) -> Path:
    """Every step from WARC records to shards, on the local executor."""
    for module in LATER_STAGES:
        importlib.import_module(module)
    from gristmill.pipeline.registry import get_stage

    models = tmp_path_factory.mktemp("report-models")
    quality_model = get_stage("quality.fasttext_v1").contract_params(models)["model"]
    text = FULL.format(data=data_dir, quality_model=quality_model)
    run_dir = tmp_path_factory.mktemp("report-full")
    plan = build_plan(parse_pipeline(text, "report-full.yaml"), data_dir)
    run_plan(plan, RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    write_report(run_dir)
    return run_dir


def _funnel_expected(run_dir: Path) -> list[tuple]:
    con = connect(run_dir)
    first = con.execute("SELECT sum(rows_in), sum(bytes_in) FROM stage_stats WHERE position = 0").fetchone()
    steps = con.execute("""SELECT step, stage, sum(rows_out), sum(bytes_out) FROM stage_stats
                           GROUP BY position, step, stage ORDER BY position""").fetchall()
    return [("input", "records read", *first), *steps]


def _funnel_found(page: _Page) -> list[tuple]:
    return [(r["step"], r["stage"], int(r["documents"]), int(r["bytes"]))
            for r in table(page, "funnel") if "documents" in r]


def test_demo_funnel_equals_duckdb_over_the_run_directory(demo_run):
    page = parse(demo_run / "report.html")
    assert _funnel_found(page) == _funnel_expected(demo_run)
    records = _funnel_found(page)[0][2]
    assert records > _funnel_found(page)[-1][2] > 0  # WARC records in, fewer documents out


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory) -> Path:
    """examples/demo.yaml, the whole pipeline, on the local executor."""
    spec, base = load_pipeline(REPO / "examples" / "demo.yaml")
    spec = spec.model_copy(update={"execution": spec.execution.model_copy(update={"executor": "local"})})
    run_dir = tmp_path_factory.mktemp("report-full-demo")
    run_plan(build_plan(spec, base), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    return run_dir


def test_full_demo_report_funnel_runs_from_warc_records_to_shard_tokens(full_demo):
    """The funnel starts at the records read and ends at shard tokens; every number equals DuckDB."""
    page = parse(full_demo / "report.html")
    assert _funnel_found(page) == _funnel_expected(full_demo)
    shard_row = table(page, "funnel")[-1]
    assert shard_row["stage"] == "shard tokens"
    assert int(shard_row["tokens"]) == connect(full_demo).execute(
        "SELECT sum(len(input_ids)) FROM shards").fetchone()[0]
    assert {"funnel", "drops", "languages", "histograms", "dedup", "tokenizer", "mixture", "shards"} <= set(page.sections)


def test_demo_drops_equal_the_drops_view(demo_run):
    page = parse(demo_run / "report.html")
    found = sorted((r["step"], r["reason"], int(r["rows"])) for r in table(page, "drops"))
    expected = connect(demo_run).execute(
        "SELECT step, reason, sum(rows) FROM drops GROUP BY step, reason ORDER BY 1, 2").fetchall()
    assert found == [tuple(e) for e in expected]
    assert ("ingest", "not_response") in {(s, r) for s, r, _ in found}


def test_demo_report_shows_only_sections_with_data(demo_run):
    page = parse(demo_run / "report.html")
    assert page.sections == ["funnel", "drops", "run", "timeline"]
    assert not (demo_run / "stats" / "histograms.parquet").exists()


def test_report_is_self_contained(demo_run, full_run):
    for run_dir in (demo_run, full_run):
        text = (run_dir / "report.html").read_text(encoding="utf-8")
        page = parse(run_dir / "report.html")
        assert not {"script", "link", "img", "iframe", "object"} & page.tags
        assert all(link.startswith("#") for link in page.links), page.links
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text)
        assert "@import" not in text
        assert text.count('<svg class="chart"') >= 3


def test_full_funnel_runs_from_warc_records_to_shard_tokens(full_run):
    page = parse(full_run / "report.html")
    assert _funnel_found(page) == _funnel_expected(full_run)
    shard_row = table(page, "funnel")[-1]
    assert shard_row["stage"] == "shard tokens"
    con = connect(full_run)
    assert int(shard_row["tokens"]) == con.execute("SELECT sum(len(input_ids)) FROM shards").fetchone()[0]
    per_source = {r["source"]: int(r["tokens"]) for r in table(page, "shard-sources")}
    assert per_source == dict(con.execute("SELECT source, sum(len(input_ids)) FROM shards GROUP BY 1").fetchall())
    assert page.sections == ["funnel", "drops", "languages", "histograms", "dedup", "tokenizer", "mixture",
                             "shards", "run", "timeline"]


def test_histograms_cover_each_scored_document_and_carry_the_thresholds(full_run):
    con = connect(full_run)
    # Every document that got a lang_score: the segment's kept rows and the rows its filter dropped.
    scored = con.execute("""
        SELECT (SELECT count(*) FROM segment_00)
             + (SELECT count(*) FROM rejects WHERE step LIKE '%-filter_v1')""").fetchone()[0]
    counted = dict(con.execute('SELECT "column", sum(documents) FROM histograms GROUP BY 1').fetchall())
    assert counted["lang_score"] == counted["q_word_count"] == counted["quality_score"] == scored
    dropped = con.execute("""SELECT sum(documents) FROM histograms
                             WHERE "column" = 'q_word_count' AND status = 'dropped'""").fetchone()[0]
    assert dropped == con.execute("SELECT sum(rows) FROM drops WHERE stage = 'filter_v1'").fetchone()[0] > 0
    # The threshold lies inside the drawn range, and dropped rows lie in bins starting below it.
    lo, hi, top_dropped = con.execute("""
        SELECT min(bin_lo), max(bin_hi), max(bin_lo) FILTER (WHERE status = 'dropped')
        FROM histograms WHERE "column" = 'q_word_count'""").fetchone()
    assert lo <= 20 <= hi and top_dropped < 20
    page = parse(full_run / "report.html")
    assert {(r["column"], r["thresholds"]) for r in table(page, "thresholds")} == {
        ("lang_score", ">= 0.3"), ("q_word_count", ">= 20")}


def test_dedup_languages_tokenizer_and_mixture_sections_match_their_sources(full_run):
    import json

    page = parse(full_run / "report.html")
    con = connect(full_run)
    removed = con.execute("SELECT sum(rows) FROM drops WHERE stage = 'dedup.minhash_v1'").fetchone()[0]
    assert removed == 3  # three files were ingested twice
    assert sum(int(r["removed"]) for r in table(page, "clusters")) == removed
    assert {(r["cluster-size"], r["clusters"]) for r in table(page, "clusters")} == {("2", "3")}
    langs = {r["lang"]: int(r["kept"]) + int(r["dropped"]) for r in table(page, "languages")}
    assert sum(langs.values()) == con.execute(
        "SELECT (SELECT count(*) FROM segment_00) + (SELECT count(*) FROM rejects WHERE lang IS NOT NULL "
        "AND step LIKE '%-filter_v1')").fetchone()[0]
    assert langs["en"] >= 10  # the Python modules
    meta = json.loads((full_run / "tokenizer" / "tokenizer_meta.json").read_text())
    facts = {r["key"]: r["value"] for r in table(page, "facts") if r["key"].startswith("tokenizer.")}
    assert facts["tokenizer.vocab_size"] == str(meta["vocab_size"])
    manifest = json.loads((full_run / "manifest.json").read_text())
    mixture = {r["source"]: (float(r["target"]), float(r["realized"])) for r in table(page, "mixture")}
    assert mixture == {s: (i["target_share"], i["realized_share"]) for s, i in manifest["sources"].items()}


def test_tokenizer_training_and_packing_record_their_figures_in_global_stats(full_run):
    """The tokenizer and packing steps store what they measured like every global step (stats/global.parquet,
    per source where it is a source's), equal to what their artifacts say; ``inspect`` lists them."""
    from gristmill.pipeline.inspection import inspect_run

    meta = json.loads((full_run / "tokenizer" / "tokenizer_meta.json").read_text())
    manifest = json.loads((full_run / "manifest.json").read_text())
    rows = connect(full_run).execute("""SELECT stage, source, name, value FROM global_stats
                                        WHERE stage IN ('tokenizer.train_bbpe_v1', 'mixture.pack_v1')""").fetchall()
    tok = {(source, name): value for stage, source, name, value in rows if stage == "tokenizer.train_bbpe_v1"}
    mix = {(source, name): value for stage, source, name, value in rows if stage == "mixture.pack_v1"}
    assert tok[(None, "vocab_size")] == meta["vocab_size"]
    assert tok[(None, "sample_bytes")] == meta["sample"]["bytes"]
    for source, sampled in meta["sample"]["sources"].items():
        assert (tok[(source, "sample_bytes")], tok[(source, "available_bytes")]) == \
            (sampled["bytes"], sampled["available_bytes"])
    assert (mix[(None, "shards")], mix[(None, "rows")], mix[(None, "tokens")]) == \
        (len(manifest["shards"]), manifest["rows"], manifest["tokens"])
    for source, packed in manifest["sources"].items():
        assert (mix[(source, "tokens_in")], mix[(source, "tokens_out")], mix[(source, "realized_share")]) == \
            (packed["available_tokens"], packed["tokens"], packed["realized_share"])
    listed = inspect_run(full_run)
    assert "tokens_out" in listed and "vocab_size" in listed


def test_report_is_regenerated_and_stale_tables_removed(full_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(full_run, run_dir)
    (run_dir / "manifest.json").unlink()
    shutil.rmtree(run_dir / "shards")
    write_report(run_dir)
    page = parse(run_dir / "report.html")
    assert "shards" not in page.sections
    assert not (run_dir / "stats" / "shard_tokens.parquet").exists()
    assert table(page, "funnel")[-1]["stage"] == "mixture.pack_v1"
    # The mixture section is the packing step's own statistics, which outlive its files; gone with them.
    assert "mixture" in page.sections
    (run_dir / "stats" / "global.parquet").unlink()
    write_report(run_dir)
    assert "mixture" not in parse(run_dir / "report.html").sections
    assert not (run_dir / "stats" / "mixture.parquet").exists()


def test_report_of_an_empty_run_directory_is_a_page_without_sections(tmp_path):
    write_report(tmp_path)
    assert parse(tmp_path / "report.html").sections == []
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


# --- rendering in a real browser ------------------------------------------------------------------------------

# Requests Chromium's own background services make at start-up (blocked by the resolver rule); none is the page's.
BROWSER_SERVICES = re.compile(r"^https?://(clients\d*\.google\.com|accounts\.google\.com|update\.googleapis\.com|"
                              r"[a-z0-9-]+\.gvt1\.com|safebrowsing\.googleapis\.com|optimizationguide-pa\.googleapis"
                              r"\.com|content-autofill\.googleapis\.com)/")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--enable-logging=stderr", "--v=1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def page_requests(stderr: str) -> list[str]:
    """URLs the network stack was asked to fetch, minus the browser's own service calls."""
    urls = re.findall(r"NotifyBeforeURLRequest: (\S+)", stderr)
    return [u for u in urls if not BROWSER_SERVICES.match(u)]


def require_chromium() -> None:
    """Skip where headless Chromium is not installed, except in CI (``CI=true``): there ``.ci/run`` installs it,
    and a missing browser must fail the run rather than silently drop the rendering check."""
    if CHROMIUM.exists():
        return
    message = f"headless Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


def test_chromium_renders_the_demo_report_without_network(full_demo, tmp_path):
    require_chromium()
    url = (full_demo / "report.html").as_uri()
    dom = chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    charts = re.findall(r'<svg class="chart" data-chart="(\w+)"', rendered)
    assert set(charts) >= {"funnel", "drops", "timeline", "histograms", "mixture", "mixture_tokens", "shards"}
    assert rendered.count("<path") > 20  # the bars are in the rendered DOM, not just the element
    assert page_requests(dom.stderr) == []

    png = tmp_path / "report.png"
    shot = chromium(tmp_path, "--window-size=1200,2400", "--hide-scrollbars", f"--screenshot={png}", url)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    assert page_requests(shot.stderr) == []
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1200, 2400)
        colors = im.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50  # charts and text, not a blank page
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(png, artifacts / "report.png")


def test_chromium_request_log_catches_an_external_resource(tmp_path):
    """The no-network check can fail: a page loading a remote image shows up in the request log."""
    require_chromium()
    page = tmp_path / "external.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://example.com/x.png"></body></html>')
    out = chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", page.as_uri())
    assert page_requests(out.stderr) == ["http://example.com/x.png"]


def test_report_stats_are_parquet_views_for_sql(full_run):
    from gristmill.pipeline._internal.duck import RunFiles
    from gristmill.pipeline._internal.report_stats import TABLES, create_views

    files = RunFiles(full_run)
    made = create_views(files, full_run)
    assert set(made) == set(TABLES)
    for name in made:
        assert pq.read_metadata(full_run / "stats" / f"{name}.parquet").num_rows == \
            files.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]


# --- one look across charts: colours, axes, titles --------------------------------------------------------------

def _charts(page_text: str) -> dict[str, str]:
    """Each inline chart's SVG text by its name."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<svg class="chart" data-chart="(\w+)".*?</svg>', page_text,
                                                        re.S)}


def _listed_colors(svg: str) -> dict[str, str]:
    listed = re.search(r'data-colors="([^"]*)"', svg)
    return dict(item.split("=", 1) for item in html.unescape(listed.group(1)).split(";")) if listed else {}


def test_each_source_has_one_colour_in_every_chart(full_demo):
    page = (full_demo / "report.html").read_text(encoding="utf-8")
    charts = _charts(page)
    by_source: dict[str, set[str]] = {}
    sourced = [name for name in ("funnel", "drops", "bytes_per_token", "mixture_tokens", "mixture", "shards")]
    for name in sourced:
        colors = _listed_colors(charts[name])
        assert colors, f"{name} lists no colours"
        for source, color in colors.items():
            by_source.setdefault(source, set()).add(color)
            assert f"fill: {color.lower()}" in charts[name], f"{name}: {source}'s {color} is not drawn"
    assert {s for s, c in by_source.items() if len(c) != 1} == set(), by_source
    assert len({c for cs in by_source.values() for c in cs}) == len(by_source) == 7  # the seven LLaMA sources
    # The funnel's sources include the drops' ones: the colour map is the run's, not the chart's.
    assert set(_listed_colors(charts["drops"])) < set(_listed_colors(charts["funnel"]))


def _tick_labels(svg: str, axis: str) -> list[str]:
    return re.findall(rf'<text [^>]*class="{axis}tick"[^>]*>([^<]*)</text>', svg)


def test_shard_axis_ticks_are_whole_shard_numbers(full_demo):
    charts = _charts((full_demo / "report.html").read_text(encoding="utf-8"))
    shards = len(json.loads((full_demo / "manifest.json").read_text())["shards"])
    ticks = _tick_labels(charts["shards"], "x")
    assert ticks and {int(t.replace("−", "-")) for t in ticks} <= set(range(shards)), ticks
    counts = _tick_labels(charts["dedup"], "y")  # clusters are counted: no fractional ticks either
    assert counts and all(re.fullmatch(r"−?\d+", t) for t in counts), counts


def test_no_chart_text_reaches_outside_its_chart(full_demo, full_run):
    for run_dir in (full_demo, full_run):
        charts = _charts((run_dir / "report.html").read_text(encoding="utf-8"))
        overflow = {name: re.search(r'data-overflow="(\d+)"', svg).group(1) for name, svg in charts.items()}
        assert set(overflow.values()) == {"0"}, overflow


def test_overflow_check_catches_a_cut_title_and_a_threshold_label_off_the_panel():
    from gristmill.pipeline._internal import report_charts as rc

    labels = ["a rather long category label on the left", "b"]
    fits = rc.barh_chart("fits", "a short title", labels, {"n": [1.0, 2.0]}, {"n": "#4C72B0"}, width=400)
    assert 'data-overflow="0"' in fits
    cut = rc.barh_chart("cut", "a long title centred over a chart too narrow for it, so both its ends are cut off",
                        labels, {"n": [1.0, 2.0]}, {"n": "#4C72B0"}, width=400)
    assert re.search(r'data-overflow="(\d+)"', cut).group(1) == "1"
    panel = {"column": "q_word_count", "edges": [0.0, 10.0, 20.0], "kept": [3, 4], "dropped": [0, 1],
             "thresholds": [(">=", 5.0), ("<=", 100000.0)]}
    grid = rc.histogram_grid([panel])
    assert 'data-overflow="0"' in grid and "&lt;= 100000 →" in grid
    # A label that starts beside its threshold near the panel's right edge runs off the panel.
    off = dict(panel, thresholds=[("<= a threshold label far too long for the panel", 9.0)])
    assert 'data-overflow="1"' in rc.histogram_grid([off, panel, panel])


def test_text_width_follows_the_font_table():
    from gristmill.pipeline._internal.report_charts import text_width

    assert text_width("iiii", 10) < text_width("MMMM", 10) < text_width("MMMM", 10, bold=True)
    assert text_width("语言", 10) == 20  # wide characters take a full em


# --- rejected documents, mixture tokens -------------------------------------------------------------------------

def test_sample_rejects_are_the_first_per_step_and_reason_with_their_full_length(full_run):
    page = parse(full_run / "report.html")
    samples = table(page, "samples")
    con = connect(full_run)
    expected = con.execute("""
        SELECT step, reject_reason, doc_id, length(text) FROM (
            SELECT *, row_number() OVER (PARTITION BY step, reject_reason ORDER BY doc_id) AS n FROM rejects)
        WHERE n <= 3""").fetchall()
    assert samples  # there are rejected documents in this run
    found = sorted((r["reason"], int(r["doc-id"]), int(r["chars"])) for r in samples)
    assert found == sorted((reason, doc_id, chars or 0) for _, reason, doc_id, chars in expected)
    assert {r["reason"] for r in samples} == {r[0] for r in con.execute("SELECT DISTINCT reason FROM drops").fetchall()}
    text = (full_run / "report.html").read_text(encoding="utf-8")
    long_one = next(r for r in samples if int(r["chars"]) > 240)
    row = re.search(rf'<tr data-step="[^"]*" data-reason="[^"]*" data-doc-id="{long_one["doc-id"]}".*?</tr>', text,
                    re.S).group(0)
    assert f"{int(long_one['chars']):,} characters" in row and "…</div>" in row and int(long_one["shown"]) == 240


def test_mixture_step_shows_tokens_in_and_out_per_source(full_demo):
    page = parse(full_demo / "report.html")
    manifest = json.loads((full_demo / "manifest.json").read_text())
    mixture = {r["source"]: (int(r["tokens-in"]), int(r["tokens"])) for r in table(page, "mixture")}
    assert mixture == {s: (i["available_tokens"], i["tokens"]) for s, i in manifest["sources"].items()}
    funnel = {r["stage"]: r for r in table(page, "funnel")}
    assert int(funnel["mixture.pack_v1"]["tokens"]) == manifest["tokens"]
    tokenized = connect(full_demo).execute("SELECT sum(n_tokens) FROM segment_03").fetchone()[0]
    assert int(funnel["tokenize.bbpe_v1"]["tokens"]) == tokenized


# --- a run directory on an object store ---------------------------------------------------------------------------

def test_report_of_a_run_on_an_object_store_fetches_each_file_once(full_run, s3_requests, s3_query):
    """Every object-store request is a round trip: the report lists the run once and asks for each file it reads
    once (its size, its bytes), however many queries and schema lookups read it; its tables are the local run's."""
    from collections import Counter

    from gristmill.core.storage import resolve

    remote = resolve(f"s3://gristmill-run/runs/full?{s3_query}")
    for f in sorted(full_run.rglob("*")):
        if f.is_file() and f.name != "report.html":
            (remote / str(f.relative_to(full_run))).write_bytes(f.read_bytes())
    s3_requests.requests.clear()
    write_report(str(remote))

    per_key = Counter(s3_requests.requests)
    listings = sum(n for (_, key), n in per_key.items() if "list-type" in key)
    assert listings <= 2, [k for k in per_key if "list-type" in k[1]]
    twice = {request: n for request, n in per_key.items() if n > 1 and "list-type" not in request[1]}
    assert not twice, twice
    read = {key for method, key in per_key if method == "GET" and "list-type" not in key}
    assert any("/segments/" in key for key in read) and any("/rejects/" in key for key in read)
    for name in ("funnel", "histograms", "languages", "mixture", "tokenizer_sources", "reject_samples"):
        local = pq.read_table(full_run / "stats" / f"{name}.parquet")
        assert (remote / "stats" / f"{name}.parquet").read_parquet().equals(local), name
    page = (remote / "report.html").read_text()
    assert all(f'id="{section}"' in page for section in ("funnel", "histograms", "mixture", "shards"))


def test_report_on_an_object_store_reads_none_of_the_tables_it_writes_back(full_run, s3_requests, s3_query):
    """The derived tables the report writes, then queries for its page, are read from the bytes it wrote; and
    the run tables written after it (stats.json updated) reuse the report's reading of the run."""
    from gristmill.core.storage import resolve
    from gristmill.pipeline._internal.duck import RunFiles
    from gristmill.pipeline._internal.report_stats import TABLES, write_run_tables

    remote = resolve(f"s3://gristmill-run/runs/written?{s3_query}")
    for f in sorted(full_run.rglob("*")):
        if f.is_file() and f.name != "report.html":
            (remote / str(f.relative_to(full_run))).write_bytes(f.read_bytes())
    s3_requests.requests.clear()
    files = RunFiles(remote)
    write_report(str(remote), files=files)
    write_run_tables(str(remote), files)

    derived = {f"/runs/written/stats/{name}.parquet" for name in TABLES}
    read_back = [(m, key) for m, key in s3_requests.requests if m != "PUT" and any(key.endswith(d) for d in derived)]
    assert not read_back, read_back
    written = [key for m, key in s3_requests.requests if m == "PUT" and any(key.endswith(d) for d in derived)]
    assert written and sum(1 for k in written if k.endswith("/stats/timeline.parquet")) == 2
    assert sum(1 for _, key in s3_requests.requests if "list-type" in key) == 1
    for name in ("funnel", "run_facts", "timeline"):
        local = pq.read_table(full_run / "stats" / f"{name}.parquet")
        assert (remote / "stats" / f"{name}.parquet").read_parquet().equals(local), name

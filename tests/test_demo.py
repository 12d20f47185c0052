"""examples/demo.yaml end to end, as `make demo` runs it: every LLaMA source from its shipped file to token shards.

One local run is shared by the module; a second run with the same seed, one with another seed, and one on the
session's Ray cluster are compared against it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, run_plan
from gristmill.pipeline.inspection import connect
from gristmill.pipeline.spec import load_pipeline

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo.yaml"
SOURCES = ["arxiv", "books", "c4", "common_crawl", "github", "stackexchange", "wikipedia"]


def demo_plan(seed: int | None = None):
    spec, base = load_pipeline(DEMO)
    update = {"execution": spec.execution.model_copy(update={"executor": "local"})}
    if seed is not None:
        update["seed"] = seed
    return build_plan(spec.model_copy(update=update), base)


def run_demo(run_dir: Path, executor=None, seed: int | None = None) -> Path:
    run_plan(demo_plan(seed), RunDir(run_dir), executor or LocalExecutor(), log=lambda m: None)
    return run_dir


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    return run_demo(tmp_path_factory.mktemp("demo"))


def shard_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "shards").glob("*.parquet"))}


def tokens_per_source(run_dir: Path) -> dict[str, int]:
    return dict(connect(run_dir).execute(
        "SELECT source, sum(len(input_ids)) FROM shards GROUP BY 1 ORDER BY 1").fetchall())


# --- what the run directory says about every step ------------------------------------------------------------


def test_every_step_accounts_for_every_document_of_every_source(demo_run):
    con = connect(demo_run)
    stats = con.execute("""SELECT position, source, rows_in, rows_out, rows_dropped FROM stage_stats
                           ORDER BY source, position""").fetchall()
    steps = len(demo_plan().steps)
    by_source: dict[str, list[tuple]] = {}
    for position, source, rows_in, rows_out, dropped in stats:
        assert rows_in == rows_out + dropped, (position, source)
        by_source.setdefault(source, []).append((position, rows_in, rows_out))
    assert sorted(by_source) == SOURCES
    dropped_by_reason = {(p, s): n for p, s, n in con.execute(
        "SELECT position, source, sum(rows) FROM drops GROUP BY ALL").fetchall()}
    for source, chain in by_source.items():
        assert [p for p, _, _ in chain] == list(range(steps)), source  # every step saw every source
        for (_, _, kept), (position, received, _) in itertools.pairwise(chain):
            assert kept == received, (source, position)  # what one step kept, the next received
        for position, rows_in, rows_out in chain:
            assert dropped_by_reason.get((position, source), 0) == rows_in - rows_out, (source, position)
    final = dict(con.execute("SELECT source, count(*) FROM documents GROUP BY 1").fetchall())
    assert final == {s: chain[-1][2] for s, chain in by_source.items()}
    assert all(final[s] > 0 for s in SOURCES)  # the filter is lenient enough for every source


def test_the_demo_data_exercises_each_kind_of_drop(demo_run):
    con = connect(demo_run)
    drops = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "SELECT stage, source, reason, sum(rows) FROM drops GROUP BY ALL").fetchall()}
    # The Common Crawl sample's request and metadata records, its cut-off record, the WET file's warcinfo.
    assert drops[("ingest", "common_crawl", "not_response")] == 34
    assert drops[("ingest", "common_crawl", "truncated_record")] == 1
    assert drops[("ingest", "wikipedia", "not_conversion")] == 1
    assert any(stage == "filter_v1" for stage, _, _ in drops)

    def rejected(reason: str) -> list[tuple]:
        return con.execute("SELECT source, url, origin FROM rejects WHERE reject_reason = ? ORDER BY origin",
                           [reason]).fetchall()

    # FOLDOC's "lorem ipsum" entry is placeholder text by definition.
    assert [(s, u) for s, u, _ in rejected("boilerplate_lorem_ipsum")] == [
        ("wikipedia", "https://foldoc.org/Lorem+ipsum")]
    # TeX Live ships the same ethics.tex in two templates: one copy is kept, one dropped.
    exact = rejected("exact_duplicate")
    assert [(s, Path(o).name) for s, _, o in exact] == [("arxiv", "ethics.tex")]
    kept = [o for (o,) in con.execute("SELECT origin FROM documents WHERE origin LIKE '%/ethics.tex'").fetchall()]
    assert len(kept) == 1 and kept[0] != exact[0][2]
    # The Annals and Israel J. Math. samples are both amsmath's testmath.tex, reformatted: near duplicates.
    near = rejected("near_duplicate")
    assert [(s, Path(o).name) for s, _, o in near] in ([("arxiv", "ijmsample.tex")], [("arxiv", "aomsample.tex")])


def test_sql_over_the_run_directory_answers_like_make_demo(demo_run, capsys):
    from gristmill.pipeline.cli import main

    assert main(["sql", str(demo_run), "SELECT source, count(*) AS n FROM documents GROUP BY 1 ORDER BY 1",
                 "--format", "csv"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines[0] == "source,n" and [line.split(",")[0] for line in lines[1:]] == SOURCES


def test_report_and_verify(demo_run, capsys):
    from gristmill.pipeline.cli import main

    page = (demo_run / "report.html").read_text(encoding="utf-8")
    for section in ("funnel", "drops", "languages", "dedup", "tokenizer", "mixture", "shards"):
        assert f'id="{section}"' in page, section
    assert main(["verify", str(demo_run)]) == 0
    assert "shards match manifest.json" in capsys.readouterr().out


def _bytes_under(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_the_run_stores_the_corpus_about_once_not_once_per_segment(demo_run):
    """Each column is stored once (gristmill/core/parts.py): the segments hold the text once plus the tokens,
    where every segment used to copy every column (3.5x the input's bytes)."""
    inputs = sum(f["bytes"] for f in json.loads((demo_run / "plan.json").read_text())["input_files"])
    assert _bytes_under(demo_run / "segments") <= 1.25 * inputs
    # Everything the run writes, the report page and the MinHash step's state included: at most twice the input.
    assert _bytes_under(demo_run) <= 2 * inputs


# --- the artefacts a training job reads ---------------------------------------------------------------------


def test_the_tokenizer_loads_with_the_tokenizers_library_alone(demo_run):
    import json

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(demo_run / "tokenizer" / "tokenizer.json"))
    assert tok.get_vocab_size() == 4000
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert tok.token_to_id("<|endoftext|>") == manifest["tokenizer"]["separator_id"]
    con = connect(demo_run)
    # Byte-level BPE is lossless: each source's first document survives a round trip, accents and CJK included.
    samples = con.execute("SELECT source, any_value(text ORDER BY doc_id), any_value(tokens ORDER BY doc_id) "
                          "FROM documents GROUP BY 1").fetchall()
    assert len(samples) == len(SOURCES)
    for source, text, tokens in samples:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == tokens and tok.decode(ids) == text, source
    assert con.execute("SELECT max(list_max(input_ids)) FROM shards").fetchone()[0] < tok.get_vocab_size()


def test_realized_token_shares_match_the_llama_mixture(demo_run):
    from gristmill.mixtures.solver import load_mixture

    target = load_mixture("llama").ratios
    realized = dict(connect(demo_run).execute("""
        SELECT source, sum(len(input_ids)) / (SELECT sum(len(input_ids)) FROM shards) FROM shards
        GROUP BY 1""").fetchall())
    assert sorted(realized) == sorted(target) == SOURCES
    for source, share in target.items():
        assert abs(realized[source] - share) < 0.005, (source, realized[source], share)
    rows, seq_len = connect(demo_run).execute("SELECT count(*), max(len(input_ids)) FROM shards").fetchone()
    assert seq_len == 256 and rows * seq_len >= 51_200  # enough rows that one row is < 0.5 pp of the total


# --- reproducibility -----------------------------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_shards(demo_run, tmp_path):
    again = run_demo(tmp_path / "again")
    assert shard_bytes(again) == shard_bytes(demo_run)
    assert (again / "tokenizer" / "tokenizer.json").read_bytes() == \
        (demo_run / "tokenizer" / "tokenizer.json").read_bytes()


def test_another_seed_reorders_rows_but_keeps_each_sources_tokens(demo_run, tmp_path):
    other = run_demo(tmp_path / "seed7", seed=7)
    assert tokens_per_source(other) == tokens_per_source(demo_run)

    def row_sources(run_dir: Path) -> list[str]:
        return [s for (s,) in connect(run_dir).execute("SELECT source FROM shards").fetchall()]

    assert sorted(row_sources(other)) == sorted(row_sources(demo_run))
    assert row_sources(other) != row_sources(demo_run)
    assert shard_bytes(other) != shard_bytes(demo_run)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_writes_the_same_shards_as_the_local_one(demo_run, ray_cluster, tmp_path):
    from gristmill.pipeline.executors import RayExecutor

    on_ray = run_demo(tmp_path / "ray", executor=RayExecutor())
    assert shard_bytes(on_ray) == shard_bytes(demo_run)
    assert dict(connect(on_ray).execute("SELECT source, count(*) FROM documents GROUP BY 1").fetchall()) == \
        dict(connect(demo_run).execute("SELECT source, count(*) FROM documents GROUP BY 1").fetchall())


# --- the LLaMA quality recipe on the demo's own corpus ---------------------------------------------------------


def test_quality_classifier_trained_on_the_demo_filters_a_pipeline_by_quality_score(demo_run, tmp_path, monkeypatch):
    from gristmill.pipeline.cli import main

    model = tmp_path / "quality.bin"
    assert main(["train-quality", "--run-dir", str(demo_run), "--segment", "00-ingest", "--output", str(model),
                 "--positive", "wikipedia", "--positive", "books", "--negative", "common_crawl",
                 "--epoch", "25", "--lr", "0.5"]) == 0
    monkeypatch.setenv("QUALITY_MODEL", str(model))

    def run(threshold: float, name: str):
        monkeypatch.setenv("QUALITY_MIN", str(threshold))
        spec, base = load_pipeline(REPO / "examples" / "quality.yaml")
        spec = spec.model_copy(update={"execution": spec.execution.model_copy(update={"executor": "local"})})
        run_plan(build_plan(spec, base), RunDir(tmp_path / name), LocalExecutor(), log=lambda m: None)
        return connect(tmp_path / name)

    # Score everything first (threshold 0 keeps all), then filter at the median score: half the documents go.
    scored = run(0.0, "all")
    median = scored.execute("SELECT median(quality_score) FROM documents").fetchone()[0]
    con = run(median, "filtered")
    for rows_in, rows_out, dropped in con.execute("SELECT rows_in, rows_out, rows_dropped FROM stage_stats").fetchall():
        assert rows_in == rows_out + dropped
    reason = f"filter:quality_score>={median}"
    dropped = con.execute("SELECT sum(rows) FROM drops WHERE reason = ?", [reason]).fetchone()[0]
    below = scored.execute("SELECT count(*) FROM documents WHERE quality_score < ?", [median]).fetchone()[0]
    assert dropped == below > 0
    assert con.execute("SELECT count(*) FROM documents WHERE quality_score < ?", [median]).fetchone()[0] == 0

"""Reading the inputs is generic over head stages: a third-party reader registered the way the
``gristmill.stages`` entry points are (``register_stage``) ingests its own format end to end, with the framework's
doc_id numbering, notes counters, size limits, ``limit`` and accounting, named by its short format or its stage
name."""

from __future__ import annotations

from typing import ClassVar, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
from gristmill.pipeline import registry
from gristmill.pipeline.inspection import connect
from gristmill.pipeline.registry import RegistryError, formats, head_stage, register_stage
from gristmill.stages.base import RECORD_SCHEMA, HeadStage, Stage, StageParams, Unit


class TabSeparated(HeadStage):
    """Tab-separated lines ``url<TAB>text``, one document per line. Only for tests."""

    name: ClassVar[str] = "acme.tsv_v1"
    format: ClassVar[str] = "acme_tsv"

    class Params(StageParams):
        marker: str = "!"  # a text starting with it is noted, not rejected

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        for path in unit.paths:
            rows = {"text": [], "url": [], "origin": [], "reject_reason": [], "notes": []}
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    url, tab, text = line.rstrip("\n").partition("\t")
                    rows["text"].append(text)
                    rows["url"].append(url or None)
                    rows["origin"].append(f"{path}:{number}")
                    rows["reject_reason"].append(None if tab else "no_tab")
                    rows["notes"].append(["marked"] if text.startswith(self.params.marker) else None)
            yield pa.table(rows, schema=RECORD_SCHEMA)


@pytest.fixture(autouse=True)
def acme_tsv(monkeypatch):
    """``TabSeparated`` registered for one test: the registry's tables are copies that the test's end restores."""
    monkeypatch.setattr(registry, "_STAGES", dict(registry._STAGES))
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))
    return register_stage(TabSeparated)

PIPELINE = """\
name: acme
seed: 1
inputs:
  - {{source: web, format: {fmt}, paths: ["*.tsv"], max_doc_bytes: 8, oversize: reject{extra}}}
steps:
  - filter: {{col: text, ne: ""}}
output: {{rejects: true}}
execution: {{executor: local}}
"""
FILES = {
    "a.tsv": "https://a.example/1\tfirst\nno tab here\nhttps://a.example/3\t!marked\n",
    "b.tsv": "https://b.example/1\tfar too long a text\nhttps://b.example/2\tsecond\n",
}


@pytest.fixture
def corpus(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _run(corpus, fmt: str, extra: str = ""):
    plan = build_plan(parse_pipeline(PIPELINE.format(fmt=fmt, extra=extra), "acme.yaml"), corpus)
    run_dir = corpus / f"run-{fmt}{len(extra)}"
    result = run_plan(plan, RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    return result, run_dir


def test_a_registered_third_party_reader_ingests_its_format_end_to_end(corpus):
    assert head_stage("acme_tsv") is TabSeparated and formats()["acme_tsv"] == "acme.tsv_v1"
    result, run_dir = _run(corpus, "acme_tsv")
    documents = pq.read_table(RunDir(run_dir).segment_dir(result.stats[0].segment)).sort_by("doc_id")
    assert documents.column("doc_id").to_pylist() == [0, 2, (1 << 32) | 1]  # (unit << 32) | record ordinal
    assert documents.column("text").to_pylist() == ["first", "!marked", "second"]
    assert documents.column("url").to_pylist() == ["https://a.example/1", "https://a.example/3", "https://b.example/2"]
    assert set(documents.column("source").to_pylist()) == {"web"}
    con = connect(run_dir)
    assert con.execute("SELECT stage, rows_in, rows_out FROM stage_stats WHERE step = 'ingest'").fetchall() == [
        ("ingest", 5, 3)]
    assert dict(con.execute("SELECT reason, rows FROM drops WHERE step = 'ingest'").fetchall()) == {
        "no_tab": 1, "too_large": 1}
    assert dict(con.execute("SELECT counter, rows FROM counters WHERE step = 'ingest'").fetchall()) == {"marked": 1}
    assert sorted(con.execute("SELECT reject_reason FROM rejects WHERE step = '00-ingest'").fetchall()) == [
        ("no_tab",), ("too_large",)]


def test_the_format_may_name_the_reader_stage_itself_and_trial_options_apply(corpus):
    result, run_dir = _run(corpus, "acme.tsv_v1", ", limit: 2")
    documents = pq.read_table(RunDir(run_dir).segment_dir(result.stats[0].segment))
    assert sorted(documents.column("text").to_pylist()) == ["!marked", "first"]
    (ingest,) = [s for s in result.stats[0].stages if s.position == 0]
    assert ingest.counters == {"marked": 1, "limit_reached": 1, "files_not_read_by_limit": 1}


def test_a_second_reader_cannot_take_a_registered_format():
    class Impostor(TabSeparated):
        name: ClassVar[str] = "other.tsv_v1"

    with pytest.raises(RegistryError, match="input format 'acme_tsv' is already the format of stage acme.tsv_v1"):
        register_stage(Impostor)

    class Warc(TabSeparated):
        name: ClassVar[str] = "other.warc_v1"
        format: ClassVar[str] = "warc"

    with pytest.raises(RegistryError, match="input format 'warc' is already the format of stage ingest.warc_v1"):
        register_stage(Warc)


def test_a_reader_format_must_be_short_and_a_head_stage_must_be_a_reader():
    class Dotted(TabSeparated):
        name: ClassVar[str] = "other.dotted_v1"
        format: ClassVar[str] = "other.tsv_v2"

    with pytest.raises(RegistryError, match="input format 'other.tsv_v2' looks like a stage name"):
        register_stage(Dotted)

    class NotAReader(Stage):
        name: ClassVar[str] = "other.head_v1"
        kind: ClassVar[str] = "head"

    with pytest.raises(RegistryError, match="stage 'other.head_v1' is of kind 'head' but not a "
                                            "gristmill.stages.base.HeadStage"):
        register_stage(NotAReader)

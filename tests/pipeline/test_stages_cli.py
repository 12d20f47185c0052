"""``gristmill stages`` lists every registered stage, the readers of the inputs (head stages) included, with its
parameters, defaults and a one-line description; third-party stages come in through the ``gristmill.stages``
entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from gristmill.pipeline.cli import main
from gristmill.pipeline.registry import all_stages, formats

PLUGIN = '''
from typing import ClassVar

from gristmill.stages.base import StageOutput, StageParams, StreamingStage


class Shout(StreamingStage):
    """Upper-case the text of every document. Only for tests."""

    name: ClassVar[str] = "acme.shout_v1"

    class Params(StageParams):
        exclaim: bool = True
        times: int

    def process(self, table):
        return StageOutput(table, None)
'''


def test_every_stage_and_reader_is_listed_with_params_and_defaults(capsys):
    assert main(["stages", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed["stages"]] == list(all_stages())
    assert listed["formats"] == formats()
    normalize = next(s for s in listed["stages"] if s["name"] == "clean.normalize_v1")
    assert normalize["kind"] == "streaming" and normalize["description"].startswith("Unicode normalization")
    assert {"name": "form", "type": "Optional[Literal['NFC', 'NFKC', 'NFD', 'NFKD']]", "default": "NFC"} \
        in normalize["params"]
    minhash = next(s for s in listed["stages"] if s["name"] == "dedup.minhash_v1")
    assert minhash["kind"] == "global" and {"name": "threshold", "type": "float", "default": 0.8} in minhash["params"]
    filter_params = next(s for s in listed["stages"] if s["name"] == "filter_v1")["params"]
    assert {"name": "expr", "type": "dict", "required": True} in filter_params
    readers = {s["name"]: s for s in listed["stages"] if s["kind"] == "head"}
    assert {(name, s["format"]) for name, s in readers.items()} == {
        ("ingest.warc_v1", "warc"), ("ingest.wet_v1", "wet"), ("ingest.jsonl_v1", "jsonl"),
        ("ingest.parquet_v1", "parquet"), ("ingest.text_v1", "text"), ("ingest.hf_v1", "hf")}
    assert {"name": "split", "type": "str | None", "default": None} in readers["ingest.hf_v1"]["params"]
    assert {"name": "files_per_unit", "type": "int", "default": 256} in readers["ingest.text_v1"]["params"]
    assert all(s["description"] and "\n" not in s["description"] for s in listed["stages"])


def test_text_listing_has_one_line_per_stage_then_its_params(capsys):
    assert main(["stages"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  tokenize.bbpe_v1  [streaming]  Encode ``text`` into ``tokens`` (list<int32>) and ``n_tokens`` (int32) " \
           "with a BBPE tokenizer." in lines
    at = lines.index("  filter_v1  [streaming]  Drops rows whose columns fail ``expr``; the YAML step ``- filter: "
                     "EXPR`` is sugar for this stage.")
    assert lines[at + 1:at + 4] == ["    expr: dict required", "    reason: str = 'filter'",
                                    "    sources: list[str] | None = None"]
    at = lines.index("  ingest.jsonl_v1  [format: jsonl, head]  JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``), "
                     "one object per line -> its text field.")
    assert lines[at + 1] == "    text_field: str = 'text'"


def test_a_third_party_stage_from_an_entry_point_is_listed(tmp_path):
    (tmp_path / "acme_shout.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "acme_shout-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-shout\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gristmill.stages]\nacme.shout_v1 = acme_shout:Shout\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "gristmill", "stages", "--json"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path}, timeout=300)
    assert done.returncode == 0, done.stderr
    shout = next(s for s in json.loads(done.stdout)["stages"] if s["name"] == "acme.shout_v1")
    assert shout == {"name": "acme.shout_v1", "kind": "streaming", "module": "acme_shout",
                     "description": "Upper-case the text of every document.",
                     "params": [{"name": "exclaim", "type": "bool", "default": True},
                                {"name": "times", "type": "int", "required": True}]}

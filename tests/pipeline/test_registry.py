from __future__ import annotations

from typing import ClassVar

import pytest

from gristmill.pipeline.registry import RegistryError, all_stages, get_stage, register_stage
from gristmill.stages.base import StageOutput, StreamingStage


def test_builtin_stages_are_registered_by_versioned_name():
    names = set(all_stages())
    assert {"filter_v1", "clean.normalize_v1"} <= names
    assert get_stage("filter_v1").name == "filter_v1"


def test_duplicate_name_is_refused():
    existing = get_stage("filter_v1")

    class Impostor(StreamingStage):
        name: ClassVar[str] = "filter_v1"

        def process(self, table):
            return StageOutput(table)

    with pytest.raises(RegistryError, match="already registered by gristmill.stages.filter.Filter"):
        register_stage(Impostor)
    assert get_stage("filter_v1") is existing


@pytest.mark.parametrize("bad", ["Filter_v1", "clean.normalize", "clean..x_v1", "x_v", "gristmill.stages.clean:Cls"])
def test_malformed_names_are_refused(bad):
    class Bad(StreamingStage):
        name: ClassVar[str] = bad

    with pytest.raises(RegistryError, match="must look like"):
        register_stage(Bad)


def test_a_builtin_name_is_refused_to_others_before_its_module_is_imported():
    class Impostor(StreamingStage):
        name: ClassVar[str] = "lang.fasttext_v1"

    with pytest.raises(RegistryError, match="already registered by gristmill.stages.lang.fasttext_lid.FastTextLangId"):
        register_stage(Impostor)


def test_planning_a_run_imports_only_the_stages_it_names(tmp_path):
    """Start-up: a plan with one light stage on the local executor imports no other stage and no heavy library."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "docs.jsonl").write_text('{"text": "one record"}\n', encoding="utf-8")
    (tmp_path / "p.yaml").write_text(
        "name: light\ninputs:\n  - {source: c4, format: jsonl, paths: [docs.jsonl]}\n"
        "steps:\n  - stage: clean.normalize_v1\nexecution: {executor: local}\n", encoding="utf-8")
    probe = (
        "import sys\n"
        "from gristmill.pipeline.spec import load_pipeline\n"
        "from gristmill.pipeline.plan import build_plan\n"
        f"build_plan(*load_pipeline({str(tmp_path / 'p.yaml')!r}))\n"
        "heavy = ['ray', 'numba', 'tokenizers', 'tiktoken', 'fasttext', 'duckdb', 'matplotlib', 'scipy',\n"
        "         'gristmill.stages.quality.heuristics', 'gristmill.dedup.stages', 'gristmill.mixtures.stages',\n"
        "         'gristmill.stages.tokenize.encode', 'gristmill.stages.lang.fasttext_lid']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]"

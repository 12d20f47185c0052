"""README.md's "Python API" section runs as written: its Python blocks, in order, in one namespace, from a
working directory that has the repository's tests/data (the examples read it) and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_python_api_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    blocks = python_blocks(section(README.read_text(encoding="utf-8"), "Python API"))
    assert len(blocks) == 4 and "gristmill.run(" in blocks[0] and "ShardReader" in blocks[1] \
        and "ShardDataset" in blocks[2] and "export_run" in blocks[3]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(README.parent / "tests" / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md (Python API, block {i + 1})", "exec"), namespace)
    assert namespace["result"].manifest["rows"] == len(namespace["dataset"]) > 0
    assert (tmp_path / "runs" / "api-example" / "manifest.json").is_file()
    assert namespace["tokenizer"].encode("hello world") == namespace["tokenizer"].backend_tokenizer.encode(
        "hello world").ids
    assert sorted(p.suffix for p in (tmp_path / "runs" / "api-example-megatron").glob("*.*") if p.suffix != ".json") \
        == [".bin", ".idx"]


def test_the_block_reader_finds_blocks_in_a_section():
    text = "## A\n```python\nx = 1\n```\n## Python API\ntext\n```python\ny = 2\n```\n```bash\nls\n```\n## B\n"
    assert python_blocks(section(text, "Python API")) == ["y = 2\n"]

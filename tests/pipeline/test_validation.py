"""``gristmill validate`` reports every problem of a file at once, each with its line."""

from __future__ import annotations

from pathlib import Path

from gristmill.pipeline.cli import main
from gristmill.pipeline.validation import validate_file, validate_text

# Line numbers matter: every mistake below is on its own line, and the test names each line.
BROKEN = """\
name: broken
seed: 1
sede: 2
inputs:
  - source: common_crawl
    format: warc
    paths: ["{data}/warc/*.warc.gz", "nowhere/*.warc.gz"]
  - source: github
    format: pdf
    paths: ["x"]
  - source: c4
    format: jsonl
    paths: ["{data}/demo/c4-en.jsonl.gz"]
    options: {{colour: red}}
steps:
  - stage: clean.normalize_v1
    params: {{bogus: 1}}
  - stage: clean.nope_v9
  - filter: {{all: [{{col: text, nearly: 3}}]}}
  - stage: mixture.pack_v1
    params: {{ratios: {{common_crawl: 0.5, wikipedia: 0.5}}}}
execution: {{batch_rows: 0, executor: "${{EXECUTOR}}"}}
"""


def _problems(data_dir, text: str, env=None) -> list[str]:
    return [p.format("p.yaml") for p in validate_text(text.format(data=data_dir), data_dir, env=env or {})]


def test_every_problem_is_reported_with_its_line(data_dir):
    problems = _problems(data_dir, BROKEN)
    assert [p.split(":", 2)[1] for p in problems] == ["3", "7", "9", "14", "17", "18", "19", "21", "22", "22"]
    assert problems[0] == "p.yaml:3: sede: unknown key"
    assert problems[1].startswith("p.yaml:7: inputs[0].paths[1]: no file matches 'nowhere/*.warc.gz'")
    assert problems[2].startswith("p.yaml:9: inputs[1].format: unknown input format 'pdf'")
    assert problems[3] == "p.yaml:14: inputs[2].options.colour: unknown key"
    assert problems[4] == "p.yaml:17: steps[0].params.bogus: unknown key"
    assert problems[5].startswith("p.yaml:18: steps[1].stage: unknown stage 'clean.nope_v9'")
    assert problems[6].startswith("p.yaml:19: steps[2].filter: ") and "nearly" in problems[6]
    assert problems[7] == ("p.yaml:21: steps[3].params: mixture: source(s) ['wikipedia'] have a share but no input; "
                           "the inputs' sources are ['c4', 'common_crawl', 'github']")
    assert set(problems[8:]) == {
        "p.yaml:22: execution.batch_rows: Input should be greater than 0",
        "p.yaml:22: execution.executor: environment variable 'EXECUTOR' is not set (use ${EXECUTOR:-default})",
    }


def test_filter_columns_are_checked_against_earlier_steps(data_dir):
    text = BROKEN.split("steps:")[0].replace("sede: 2\n", "").replace("format: pdf", "format: text") \
        .replace('"nowhere/*.warc.gz"', '"{data}/warc/*.warc.gz"').replace("options: {{colour: red}}", "optional: true")
    text = text.replace('paths: ["x"]', 'paths: ["{data}/python-stdlib/*.py"]')
    text += "steps:\n  - stage: clean.normalize_v1\n  - filter: {{col: lang_score, ge: 0.5}}\n"
    assert _problems(data_dir, text) == [
        "p.yaml:16: steps[1].filter: column(s) ['lang_score'] do not exist at this step; available: "
        "['doc_id', 'origin', 'source', 'text', 'url']"]


def test_yaml_syntax_error_names_its_line(data_dir):
    assert _problems(data_dir, "name: x\ninputs:\n  - source: [a\n") == \
        ["p.yaml:4: not valid YAML: expected ',' or ']', but got '<stream end>'"]


def test_cli_prints_one_line_per_problem_and_exits_2(data_dir, tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(BROKEN.format(data=data_dir).replace("${EXECUTOR}", "local"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 9 and all(line.startswith(f"{path}:") for line in err)
    assert [p.format(str(path)) for p in validate_file(path)] == err


def test_run_and_plan_name_every_problem_not_only_the_first(data_dir, tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(BROKEN.format(data=data_dir).replace("${EXECUTOR}", "local"))
    expected = [f"error: {p.format(str(path))}" for p in validate_file(path)]
    for command in (["plan", str(path)], ["run", str(path), "--run-dir", str(tmp_path / "run")]):
        assert main(command) == 2
        assert capsys.readouterr().err.splitlines() == expected
    assert not (tmp_path / "run").exists()


def test_demo_validates(capsys):
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
    assert validate_file(demo) == []
    assert main(["validate", str(demo)]) == 0
    assert capsys.readouterr().out.startswith("ok:")

from __future__ import annotations

import textwrap

import pytest

from gristmill.pipeline.plan import build_plan
from gristmill.pipeline.spec import SpecError, load_pipeline, parse_pipeline

BASE = """\
name: t
seed: 7
inputs:
  - source: github
    format: text
    paths: ["{data}/python-stdlib/*.py"]
steps:
  - stage: clean.normalize_v1
  - filter: {{all: [{{col: text, ne: ""}}]}}
"""


def spec_text(data_dir, extra: str = "") -> str:
    return BASE.format(data=data_dir) + textwrap.dedent(extra)


def test_valid_pipeline_parses_and_plans(data_dir):
    spec = parse_pipeline(spec_text(data_dir), "p.yaml")
    assert spec.seed == 7 and spec.inputs[0].source == "github"
    plan = build_plan(spec, data_dir)
    assert [s.stage_name for s in plan.steps] == ["ingest", "clean.normalize_v1", "filter_v1"]
    assert len(plan.segments) == 1 and plan.units


def test_unknown_key_is_refused_with_path_and_line(data_dir):
    text = spec_text(data_dir).replace("seed: 7", "seed: 7\nsede: 8")
    with pytest.raises(SpecError) as err:
        parse_pipeline(text, "p.yaml")
    assert "p.yaml: sede: unknown key (line 3)" in str(err.value)


def test_bad_stage_param_names_the_yaml_path(data_dir):
    text = spec_text(data_dir).replace("  - stage: clean.normalize_v1",
                                       "  - stage: clean.normalize_v1\n    params: {bogus: 1}")
    with pytest.raises(SpecError) as err:
        parse_pipeline(text, "p.yaml")
    assert "p.yaml: steps[0].params.bogus: unknown key (line 9)" in str(err.value)


def test_unknown_stage_lists_known_ones(data_dir):
    text = spec_text(data_dir).replace("clean.normalize_v1", "clean.nope_v9")
    with pytest.raises(SpecError, match=r"steps\[0\]\.stage: unknown stage 'clean.nope_v9'.*clean.normalize_v1"):
        parse_pipeline(text, "p.yaml")


def test_malformed_filter_names_the_step_and_the_spot(data_dir):
    text = spec_text(data_dir).replace("ne: \"\"", "nearly: 3")
    with pytest.raises(SpecError, match=r"steps\[1\]\.filter: all\[0\]\.nearly: unknown operator"):
        parse_pipeline(text, "p.yaml")


def test_filter_on_a_column_no_step_produces_is_refused_at_plan_time(data_dir):
    text = spec_text(data_dir).replace("col: text", "col: lang_score")
    spec = parse_pipeline(text, "p.yaml")
    with pytest.raises(SpecError, match=r"steps\[1\]\.filter: column\(s\) \['lang_score'\] do not exist"):
        build_plan(spec, data_dir)


def test_env_interpolation_with_default_and_missing(data_dir):
    text = spec_text(data_dir).replace("seed: 7", "seed: ${SEED:-11}").replace("name: t", "name: ${NAME}")
    spec = parse_pipeline(text, "p.yaml", env={"NAME": "from-env"})
    assert spec.name == "from-env" and spec.seed == 11
    with pytest.raises(SpecError, match=r"p.yaml: name: environment variable 'NAME' is not set"):
        parse_pipeline(text, "p.yaml", env={})


def test_range_errors_name_the_key(data_dir):
    text = spec_text(data_dir) + "execution: {batch_rows: 0}\n"
    with pytest.raises(SpecError, match=r"execution\.batch_rows: Input should be greater than 0"):
        parse_pipeline(text, "p.yaml")


def test_unmatched_glob_names_the_input(data_dir, tmp_path):
    text = spec_text(data_dir).replace("*.py", "*.nothing")
    spec = parse_pipeline(text, "p.yaml")
    with pytest.raises(SpecError, match=r"inputs\[0\]\.paths\[0\]: no file matches"):
        build_plan(spec, tmp_path)


def test_unknown_format_and_reader_option(data_dir):
    with pytest.raises(SpecError, match=r"inputs\[0\]\.format: unknown input format 'pdf'; known formats: hf, "
                                        r"jsonl, parquet, text, warc, wet"):
        parse_pipeline(spec_text(data_dir).replace("format: text", "format: pdf"), "p.yaml")
    with pytest.raises(SpecError, match=r"inputs\[0\]\.format: input format 'clean.normalize_v1' names the streaming "
                                        r"stage clean.normalize_v1, which reads no input"):
        parse_pipeline(spec_text(data_dir).replace("format: text", "format: clean.normalize_v1"), "p.yaml")
    spelled_out = parse_pipeline(spec_text(data_dir).replace("format: text", "format: ingest.text_v1"), "p.yaml")
    assert spelled_out.inputs[0].format == "ingest.text_v1"
    bad_opt = spec_text(data_dir).replace("format: text", "format: text\n    options: {colour: red}")
    with pytest.raises(SpecError, match=r"inputs\[0\]\.options\.colour: unknown key"):
        parse_pipeline(bad_opt, "p.yaml")


def test_load_pipeline_reports_missing_file(tmp_path):
    with pytest.raises(SpecError, match="nope.yaml: cannot read"):
        load_pipeline(tmp_path / "nope.yaml")


def test_yaml_cannot_construct_python_objects(data_dir):
    text = spec_text(data_dir).replace("seed: 7", "seed: !!python/object/apply:os.system ['true']")
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_pipeline(text, "p.yaml")


def test_plan_hash_is_stable_and_changes_with_params(data_dir):
    a = build_plan(parse_pipeline(spec_text(data_dir), "p.yaml"), data_dir)
    b = build_plan(parse_pipeline(spec_text(data_dir), "p.yaml"), data_dir)
    c = build_plan(parse_pipeline(spec_text(data_dir).replace("seed: 7", "seed: 8"), "p.yaml"), data_dir)
    assert a.plan_hash == b.plan_hash != c.plan_hash


def test_plan_hash_does_not_depend_on_where_the_checkout_lives(data_dir, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere"
    shutil.copytree(data_dir / "python-stdlib", moved / "data" / "python-stdlib")
    text = BASE.format(data="data")
    here = build_plan(parse_pipeline(text, "p.yaml"), data_dir.parent)
    there = build_plan(parse_pipeline(text, "p.yaml"), moved)
    assert here.plan_hash == there.plan_hash


def test_env_value_that_is_a_whole_scalar_keeps_its_yaml_type(data_dir):
    text = spec_text(data_dir).replace('ne: ""', 'ne: "${EMPTY:-x}"').replace("seed: 7", "seed: ${SEED}")
    spec = parse_pipeline(text, "p.yaml", env={"SEED": "12"})
    assert spec.seed == 12 and spec.steps[1].filter == {"all": [{"col": "text", "ne": "x"}]}


def test_filter_value_of_the_wrong_type_is_refused_at_plan_time(data_dir):
    text = spec_text(data_dir).replace('ne: ""', "ne: 3")
    with pytest.raises(SpecError, match=r"steps\[1\]\.filter: all\[0\]: ne 3 cannot be compared with column 'text'"):
        build_plan(parse_pipeline(text, "p.yaml"), data_dir)


def test_filter_step_sources_reach_the_stage_and_stage_steps_refuse_them(data_dir):
    text = spec_text(data_dir).replace('  - filter: {all: [{col: text, ne: ""}]}',
                                       '  - filter: {all: [{col: text, ne: ""}]}\n    sources: [github]')
    plan = build_plan(parse_pipeline(text, "p.yaml"), data_dir)
    assert plan.steps[2].params["sources"] == ["github"]
    bad = spec_text(data_dir).replace("  - stage: clean.normalize_v1", "  - stage: clean.normalize_v1\n    sources: [x]")
    with pytest.raises(SpecError, match=r"steps\[0\]: 'reason' and 'sources' belong to filter steps"):
        parse_pipeline(bad, "p.yaml")


@pytest.mark.parametrize("name, problem", [
    ("..", "is only dots"),
    (".", "is only dots"),
    ('"a/b"', "contains a path separator"),
    ('"../../etc"', "contains a path separator"),
    ('"a\\\\b"', "contains a path separator"),
    (".hidden", "does not start with a letter or digit"),
    ('"two words"', "has characters other than"),
    ('""', "is empty"),
])
def test_pipeline_name_that_is_not_one_directory_name_is_refused(data_dir, name, problem):
    """The name becomes runs/NAME: `name: ..` would write the run into the current directory."""
    text = spec_text(data_dir).replace("name: t", f"name: {name}")
    with pytest.raises(SpecError) as err:
        parse_pipeline(text, "p.yaml")
    assert str(err.value).startswith("p.yaml: name: name ") and problem in str(err.value)
    assert str(err.value).endswith("(line 1)")


def test_step_names_are_validated_like_the_pipeline_name(data_dir):
    text = spec_text(data_dir).replace("  - stage: clean.normalize_v1", "  - stage: clean.normalize_v1\n    name: ..")
    with pytest.raises(SpecError, match=r"p.yaml: steps\[0\]\.name: name '\.\.' is only dots .*\(line 9\)"):
        parse_pipeline(text, "p.yaml")
    ok = spec_text(data_dir).replace("name: t", "name: demo-2.v1_b")
    assert parse_pipeline(ok, "p.yaml").name == "demo-2.v1_b"


LANG_STEPS = """\
  - stage: lang.fasttext_v1
    params: {thresholds: {no: 0.5, iw: 0.4}}
  - filter: {all: [{col: lang, in: [en, no, zh-Hans]}, {col: lang, ne: iw}]}
"""


def test_language_codes_in_yaml_are_read_as_gristmill_codes(data_dir):
    """An unquoted `no` is YAML's false; where a language code is expected it is read as Norwegian (nb)."""
    text = spec_text(data_dir).replace('  - filter: {all: [{col: text, ne: ""}]}\n', LANG_STEPS)
    plan = build_plan(parse_pipeline(text, "p.yaml"), data_dir)
    assert plan.steps[2].params["thresholds"] == {"nb": 0.5, "he": 0.4}
    assert plan.steps[3].params["expr"] == {"all": [{"col": "lang", "in": ["en", "nb", "zh"]},
                                                    {"col": "lang", "ne": "he"}]}


def test_unknown_language_code_names_the_yaml_key_and_lists_known_codes(data_dir):
    text = spec_text(data_dir).replace('  - filter: {all: [{col: text, ne: ""}]}\n',
                                       LANG_STEPS.replace("zh-Hans", "klingon"))
    with pytest.raises(SpecError) as err:
        parse_pipeline(text, "p.yaml")
    message = str(err.value)
    assert message.startswith("p.yaml: steps[2].filter: all[0].in[2]: unknown language code 'klingon'; known codes: af,")
    assert "en, eo, es" in message and message.endswith("(line 11)")
    bad_key = spec_text(data_dir).replace('  - filter: {all: [{col: text, ne: ""}]}\n',
                                          LANG_STEPS.replace("iw: 0.4", "yes: 0.4"))
    with pytest.raises(SpecError, match=r"steps\[1\]\.params\.thresholds: True is not a language code \(YAML reads "
                                        r"unquoted yes/on/true as a boolean: quote the code\)"):
        parse_pipeline(bad_key, "p.yaml")

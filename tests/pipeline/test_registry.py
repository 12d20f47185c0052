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

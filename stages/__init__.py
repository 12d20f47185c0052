"""Stages of the pipeline. The contract is in ``gristmill.stages.base``; built-ins register via ``gristmill.stages.builtin``."""

from gristmill.stages.base import GlobalStage, Resources, Stage, StageOutput, StageParams, StreamingStage

__all__ = ["GlobalStage", "Resources", "Stage", "StageOutput", "StageParams", "StreamingStage"]

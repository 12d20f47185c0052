"""Stages of the pipeline. The contract is in ``stages.base``; built-ins register via ``stages.builtin``."""

from stages.base import GlobalStage, Resources, Stage, StageOutput, StageParams, StreamingStage

__all__ = ["GlobalStage", "Resources", "Stage", "StageOutput", "StageParams", "StreamingStage"]

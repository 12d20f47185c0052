"""Stages of the pipeline. The stage contract is ``gristmill.stages.base``; the registry
(``gristmill.pipeline.registry``) lists the built-in stages."""

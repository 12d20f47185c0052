"""The contract at the bottom of gristmill: what stages, dedup and mixtures may depend on.

``storage`` (``Location``: every byte of a run, local or on an object store) and, above it, the run layout,
the runtime a stage is handed and the typed statistics. Nothing here imports the orchestrator (``pipeline``)
or Ray.
"""

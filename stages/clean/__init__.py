"""Cleaning stages: unicode normalization, boilerplate line removal, PII redaction.

Importing this package registers ``clean.normalize_v1``, ``clean.boilerplate_v1`` and ``clean.pii_v1``.
"""

from gristmill.stages.clean.boilerplate import Boilerplate
from gristmill.stages.clean.normalize import Normalize
from gristmill.stages.clean.pii import Pii

__all__ = ["Boilerplate", "Normalize", "Pii"]

"""Cleaning stages: unicode normalization, boilerplate line removal, PII redaction.

This package holds ``clean.normalize_v1``, ``clean.boilerplate_v1`` and ``clean.pii_v1``.
"""

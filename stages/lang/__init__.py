"""Language identification stages; importing this package registers them."""

from gristmill.stages.lang import fasttext_lid  # noqa: F401

"""Language identification stages; importing this package registers them."""

from stages.lang import fasttext_lid  # noqa: F401

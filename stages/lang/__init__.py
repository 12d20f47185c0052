"""Language identification stages (``lang.fasttext_v1``)."""

"""Quality scorers (``quality.heuristics_v1``, ``quality.fasttext_v1``) and the filter presets over their signals."""

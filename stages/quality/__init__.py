"""Quality scorers and the filter presets over their signals; importing this package registers them."""

from gristmill.stages.quality import fasttext_quality, heuristics, presets  # noqa: F401

"""Imports every built-in stage and reader module so their decorators register them."""

import stages.clean  # noqa: F401
import stages.filter  # noqa: F401
import stages.ingest.readers  # noqa: F401
import stages.lang  # noqa: F401
import stages.quality  # noqa: F401
import dedup.stages  # noqa: F401
import mixtures.stages  # noqa: F401
import stages.tokenize  # noqa: F401

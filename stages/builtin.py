"""Imports every built-in stage and reader module so their decorators register them."""

import gristmill.stages.clean  # noqa: F401
import gristmill.stages.filter  # noqa: F401
import gristmill.stages.ingest.readers  # noqa: F401
import gristmill.stages.lang  # noqa: F401
import gristmill.stages.quality  # noqa: F401
import gristmill.dedup.stages  # noqa: F401
import gristmill.mixtures.stages  # noqa: F401
import gristmill.stages.tokenize  # noqa: F401

"""``tokenizer.train_bbpe_v1``: a global step that trains the BBPE tokenizer on a sample of the run's corpus.

``build`` counts text per source in every part, plans the sample (``gristmill.stages.tokenize.sample``), draws it and
trains on it, and writes the run's tokenizer (``RunLayout.tokenizer``) and its metadata. Counting and sampling
run as one task per part and training as one task that reserves a whole node's CPUs (the BPE trainer is
multi-threaded); the sample goes from the sampling tasks to the training task as handles, never through the
driver. ``apply`` passes documents through unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from gristmill.core.stats import StepStats
from gristmill.core.storage import Location
from gristmill.stages.base import GlobalContext, GlobalStage, Resources, StageOutput
from gristmill.stages.tokenize.bbpe import BbpeParams, build_meta, save_tokenizer, train_on_samples
from gristmill.stages.tokenize.sample import EmptyTrainingSample, count_part, merge_counts, plan_sample, sample_part


def _sample_and_train(ctx: GlobalContext, params: BbpeParams, parts: list[Location], fractions: dict, seed: int):
    runtime = ctx.runtime
    samples = [runtime.submit(sample_part, (path, fractions, seed)) for path in parts]
    # A task starts only when its argument handles are ready, so this cannot hold CPUs the samplers need.
    training = runtime.submit(train_on_samples, params.model_dump_json(), *samples,
                              num_cpus=params.num_cpus or runtime.node_cpus)
    return runtime.get(training)


def train_tokenizer(ctx: GlobalContext, params: BbpeParams, out_dir: Location) -> dict[str, Any]:
    """Sample ``ctx.input_parts``, train, save into ``out_dir``; return the metadata written."""
    parts = sorted(ctx.input_parts, key=lambda loc: loc.path)
    if not parts:
        raise ValueError("tokenizer training got no input parts: the previous segment wrote nothing")
    seed = ctx.seed if params.seed is None else params.seed
    available = merge_counts(ctx.map(count_part, parts))
    present = [source for source, count in available.items() if count["bytes"] > 0]
    weights, weighting = params.weights_for(present)
    plan = plan_sample(available, weights, params.sample_bytes, params.max_epochs, params.max_share_ratio,
                       weighting)
    tokenizer_json, facts = _sample_and_train(ctx, params, parts, plan["fractions"], seed)
    meta = build_meta(params, tokenizer_json, facts, plan, seed)
    for key in ("weighted_sources_absent", "weighting", "max_share_ratio", "planned_bytes"):
        meta["sample"][key] = plan[key]
    save_tokenizer(out_dir, tokenizer_json, meta)
    return meta


def record_stats(stats: StepStats, meta: dict[str, Any]) -> None:
    """The tokenizer's figures and its sample's, overall and per source, from its metadata (``build_meta``)."""
    sample = meta["sample"]
    stats.figure("vocab_size", meta["vocab_size"])
    stats.figure("vocab_size_requested", meta["vocab_size_requested"])
    stats.figure("special_tokens", len(meta["special_tokens"]))
    stats.figure("training_seconds", meta["training_seconds"])
    stats.figure("sample_bytes_requested", sample["sample_bytes_requested"])
    stats.figure("planned_bytes", sample["planned_bytes"])
    stats.count("sample_bytes", sample["bytes"])
    stats.count("sample_documents", sample["documents"])
    for name, source in sample["sources"].items():
        per_source = stats.source(name)
        per_source.count("available_bytes", source["available_bytes"])
        per_source.count("available_documents", source["available_documents"])
        per_source.count("sample_bytes", source["bytes"])
        per_source.count("sample_documents", source["documents"])
        per_source.figure("target_share", source["target_share"])
        per_source.figure("sample_share", source["share"])


class TrainBbpeV1(GlobalStage):
    """Train a byte-level BPE tokenizer on a mixture-proportioned sample of the corpus (see ``bbpe.py``)."""

    name: ClassVar[str] = "tokenizer.train_bbpe_v1"
    # A tokenizer cannot be trained on nothing; build() says so instead of writing an empty vocabulary.
    empty_input_error: ClassVar[type[Exception]] = EmptyTrainingSample
    Params: ClassVar[type[BbpeParams]] = BbpeParams
    resources: ClassVar[Resources] = Resources()
    output_columns: ClassVar[dict[str, pa.DataType]] = {}

    def build(self, ctx: GlobalContext) -> None:
        record_stats(ctx.stats, train_tokenizer(ctx, self.params, ctx.layout.tokenizer_dir))
        return None

    def apply(self, table: pa.Table, state: Any) -> StageOutput:
        return StageOutput(table, None)

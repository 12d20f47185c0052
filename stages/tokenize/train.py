"""``tokenizer.train_bbpe_v1``: a global step that trains the BBPE tokenizer on a sample of the run's corpus.

``build`` counts text per source in every part, plans the sample (``gristmill.stages.tokenize.sample``), draws it and
trains on it, and writes ``RUN_DIR/tokenizer/tokenizer.json`` and ``tokenizer_meta.json``. On Ray, counting and
sampling run as one task per part and training as one task that reserves a whole node's CPUs (the BPE trainer
is multi-threaded); the sample goes from the sampling tasks to the training task as object refs, never through
the driver. ``apply`` passes documents through unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from gristmill.pipeline.registry import register_stage
from gristmill.stages.base import GlobalContext, GlobalStage, Resources, StageOutput
from gristmill.stages.tokenize.bbpe import BbpeParams, build_meta, save_tokenizer, train_on_samples
from gristmill.stages.tokenize.sample import EmptyTrainingSample, count_part, merge_counts, plan_sample, sample_part


def _largest_node_cpus() -> int:
    import ray

    cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return max([1, *cpus])


def _sample_and_train(ctx: GlobalContext, params: BbpeParams, parts: list[str], fractions: dict, seed: int):
    items = [(path, fractions, seed) for path in parts]
    params_json = params.model_dump_json()
    if ctx.executor != "ray":
        return train_on_samples(params_json, *[sample_part(item) for item in items])
    import ray

    sample_refs = [ray.remote(sample_part).remote(item) for item in items]
    num_cpus = params.num_cpus or _largest_node_cpus()
    # Ray starts a task only when its argument refs are ready, so this cannot hold CPUs the samplers need.
    train = ray.remote(num_cpus=num_cpus)(train_on_samples)
    return ray.get(train.remote(params_json, *sample_refs))


def train_tokenizer(ctx: GlobalContext, params: BbpeParams) -> dict[str, Any]:
    """Sample ``ctx.input_parts``, train, save under ``ctx.artifacts_dir``; return the metadata written."""
    parts = sorted(ctx.input_parts)
    if not parts:
        raise ValueError("tokenizer training got no input parts: the previous segment wrote nothing")
    seed = ctx.seed if params.seed is None else params.seed
    available = merge_counts(ctx.map(count_part, parts))
    plan = plan_sample(available, params.weights(), params.sample_bytes, params.max_epochs)
    tokenizer_json, facts = _sample_and_train(ctx, params, parts, plan["fractions"], seed)
    meta = build_meta(params, tokenizer_json, facts, plan, seed)
    meta["sample"]["weighted_sources_absent"] = plan["weighted_sources_absent"]
    save_tokenizer(ctx.artifacts_dir, tokenizer_json, meta)
    return meta


@register_stage
class TrainBbpeV1(GlobalStage):
    """Train a byte-level BPE tokenizer on a mixture-proportioned sample of the corpus (see ``bbpe.py``)."""

    name: ClassVar[str] = "tokenizer.train_bbpe_v1"
    # A tokenizer cannot be trained on nothing; build() says so instead of writing an empty vocabulary.
    empty_input_error: ClassVar[type[Exception]] = EmptyTrainingSample
    Params: ClassVar[type[BbpeParams]] = BbpeParams
    resources: ClassVar[Resources] = Resources()
    output_columns: ClassVar[dict[str, pa.DataType]] = {}

    def build(self, ctx: GlobalContext) -> None:
        train_tokenizer(ctx, self.params)
        return None

    def apply(self, table: pa.Table, state: Any) -> StageOutput:
        return StageOutput(table, None)

"""Demonstration datasets: generation, the on-disk format, verification and the training loader.

Public API::

    from imitate.data import GenerateConfig, generate          # record a dataset
    from imitate.data import verify_dataset, dataset_info      # check / describe one
    from imitate.data import DemoDataset, PairSampler, Batch   # read one for training
    from imitate.data import Stream, demo_seeds                # disjoint seed streams
    from imitate.data import create_aggregate, append_shard    # append-only data (DAgger)
    from imitate.data import ExportConfig, export_dataset      # to Minari or robomimic
    from imitate.data import read_minari_export, read_robomimic_export  # and back

The format is documented in ``demos/README.md`` and ``imitate.data.format``.
"""

from imitate.data.aggregate import append_shard, create_aggregate
from imitate.data.export import ExportConfig, ExportSummary, export_dataset
from imitate.data.export_minari import read_minari_export
from imitate.data.export_robomimic import read_robomimic_export
from imitate.data.format import (
    FORMAT_VERSION,
    CorruptShardError,
    DatasetError,
    Demo,
    ShardEntry,
    ShardReader,
    write_shard,
)
from imitate.data.generate import (
    GenerateConfig,
    GenerateSummary,
    Progress,
    generate,
)
from imitate.data.loader import Batch, DemoDataset, PairSampler, holdout_split
from imitate.data.record import DemoJob, DemoResult, make_env_and_expert, record_demo, rollout
from imitate.data.seeds import DemoSeeds, Stream, demo_seeds
from imitate.data.verify import DatasetInfo, VerifyReport, dataset_info, verify_dataset

__all__ = [
    "FORMAT_VERSION",
    "Batch",
    "CorruptShardError",
    "DatasetError",
    "DatasetInfo",
    "Demo",
    "DemoDataset",
    "DemoJob",
    "DemoResult",
    "DemoSeeds",
    "ExportConfig",
    "ExportSummary",
    "GenerateConfig",
    "GenerateSummary",
    "PairSampler",
    "Progress",
    "ShardEntry",
    "ShardReader",
    "Stream",
    "VerifyReport",
    "append_shard",
    "create_aggregate",
    "dataset_info",
    "demo_seeds",
    "export_dataset",
    "generate",
    "holdout_split",
    "make_env_and_expert",
    "read_minari_export",
    "read_robomimic_export",
    "record_demo",
    "rollout",
    "verify_dataset",
    "write_shard",
]

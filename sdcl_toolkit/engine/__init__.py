"""Training engine: the SDCL recipe composed from the toolkit's components.

``SDCLTrainer(TrainConfig.sysu(data_dir=...)).fit()`` trains and evaluates; the examples in
``examples/`` are thin command-line wrappers around it.
"""

from .checkpoint import CheckpointLoadError, load_checkpoint, save_checkpoint
from .config import TrainConfig, build_parser, parse_config, sysu_config_from_argv
from .evaluation import EvaluationResult, evaluate_regdb, evaluate_sysu, format_results
from .features import extract_features
from .trainer import EpochMemories, SDCLTrainer, before_after_summary, setup_distributed

__all__ = [
    "CheckpointLoadError", "load_checkpoint", "save_checkpoint", "TrainConfig", "build_parser",
    "parse_config", "sysu_config_from_argv", "EvaluationResult", "evaluate_regdb",
    "evaluate_sysu", "format_results", "extract_features", "EpochMemories", "SDCLTrainer",
    "before_after_summary", "setup_distributed",
]

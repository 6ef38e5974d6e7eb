"""Training engine: the SDCL recipe composed from the toolkit's components.

``run(TrainConfig.sysu(data_dir=..., pretrained=...))`` trains and evaluates (and sets up
``torch.distributed`` under ``torchrun``); the examples in ``examples/`` are thin
command-line wrappers around it. ``SDCLTrainer(config, model, optimizer, scheduler)`` takes
injected parts.
"""

from .builders import build_model, build_optimizer, build_scheduler, resolve_device
from .checkpoint import CheckpointLoadError, load_checkpoint, save_checkpoint
from .config import TrainConfig, build_parser, parse_config, sysu_config_from_argv
from .evaluation import EvaluationResult, evaluate_regdb, evaluate_sysu, format_results
from .features import extract_features, extract_test_features
from .trainer import MixedForward, SDCLTrainer, before_after_summary, run, setup_distributed

__all__ = [
    "CheckpointLoadError",
    "load_checkpoint",
    "save_checkpoint",
    "TrainConfig",
    "build_parser",
    "parse_config",
    "sysu_config_from_argv",
    "EvaluationResult",
    "evaluate_regdb",
    "evaluate_sysu",
    "format_results",
    "extract_features",
    "extract_test_features",
    "SDCLTrainer",
    "MixedForward",
    "before_after_summary",
    "setup_distributed",
    "run",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "resolve_device",
]

"""Training engine: the SDCL recipe composed from the toolkit's components.

``run(TrainConfig.sysu(data_dir=..., pretrained=...))`` trains and evaluates (and sets up
``torch.distributed`` under ``torchrun``); the examples in ``examples/`` are thin
command-line wrappers around it. ``SDCLTrainer(config, model, optimizer, scheduler)`` takes
injected parts.
"""

from .builders import build_model, build_optimizer, build_scheduler, resolve_device
from .checkpoint import (
    CheckpointLoadError,
    CheckpointSaveError,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig, build_parser, parse_config, sysu_config_from_argv
from .evaluation import EvaluationResult, evaluate_regdb, evaluate_sysu, format_results
from .features import extract_features, extract_test_features
from .health import ClusterCollapseError, TrainingDivergedError
from .preflight import EvaluationSplitError
from .resume_policy import ResumeConflictError
from .run_dir import OutputDirInUseError, OutputDirLockedError
from .trainer import (
    DistributedRunError,
    MixedForward,
    SDCLTrainer,
    before_after_summary,
    run,
    setup_distributed,
)

START_ERRORS = (
    CheckpointLoadError,
    EvaluationSplitError,
    OutputDirInUseError,
    OutputDirLockedError,
    ResumeConflictError,
)
"""Errors a run raises before its first epoch about its settings or folder (the example
scripts print them without a traceback)."""

__all__ = [
    "START_ERRORS",
    "CheckpointLoadError",
    "CheckpointSaveError",
    "ClusterCollapseError",
    "TrainingDivergedError",
    "EvaluationSplitError",
    "ResumeConflictError",
    "OutputDirInUseError",
    "OutputDirLockedError",
    "DistributedRunError",
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

"""One line of ``--help`` per :class:`~sdcl_toolkit.engine.TrainConfig` field.

The parser (:func:`sdcl_toolkit.engine.build_parser`) appends each flag's default, so a text
here says what the setting does, never its value (official values live in
:class:`~sdcl_toolkit.SDCLRecipe`). ``tests/engine/test_config.py`` checks that every field
has an entry.
"""

from __future__ import annotations

__all__ = ["FLAG_HELP"]

FLAG_HELP: dict[str, str] = {
    # data and model
    "dataset": "dataset protocol: sysu or regdb",
    "data_dir": "raw dataset tree (SYSU-MM01 or RegDB folder)",
    "generated_data": "train on the generated miniature SYSU-MM01 tree (the demo's data) "
    "instead of --data-dir",
    "cache_dir": "where generated trees are cached (none: the user cache folder)",
    "synthetic_identities": "identities of the generated target tree",
    "synthetic_images_per_camera": "images per identity and camera of the generated tree",
    "synthetic_nuisance": "nuisance strength (pose, background) of the generated images",
    "synthetic_ir_material_weight": "how much IR appearance depends on clothing material",
    "pretrain_steps": "supervised pretraining steps on generated other identities before "
    "SDCL (only with --pretrained none; 0: off)",
    "pretrain_identities": "identities of the generated pretraining tree",
    "pretrain_seed": "seed of the generated pretraining tree (differs from the target's)",
    "pretrain_lr": "AdamW learning rate of the pretraining stage",
    "regdb_trial": "RegDB split 1..10 (one model per trial)",
    "pretrained": "backbone checkpoint (vit_base_ics_cfs_lup.pth or another timm-style ViT), "
    "or 'none' for a random initialisation",
    "checkpoint_grid": "token grid ROWSxCOLS the --pretrained checkpoint was trained with "
    "(its pos_embed is resized from it; none: 16x8, the 256x128 ICS checkpoint)",
    "stem": "patch stem of the backbone: ics (TransReID-SSL) or linear (plain ViT "
    "checkpoints); none: the model config's",
    "model": "backbone config name (vit_base, tiny)",
    "height": "input height in pixels (none: the model config's)",
    "width": "input width in pixels (none: the model config's)",
    "norm_groups": "batch-norm groups of a training step (2: the official two-GPU "
    "DataParallel halves; 1: the joint batch)",
    # schedule
    "epochs": "training epochs (0-based)",
    "cmlabel": "first stage-2 epoch (CRA, shared cluster memories)",
    "iters_stage1": "optimisation steps per stage-1 epoch",
    "iters_stage2": "optimisation steps per stage-2 epoch",
    "batch_ir": "IR images per step (all processes together)",
    "batch_rgb": "RGB images per step (all processes together; each used twice)",
    "num_instances": "images per pseudo-identity in a PK batch",
    "use_cameras": "prefer other cameras when drawing a PK batch's instances",
    "aug_jitter": "ColorJitter brightness/contrast/saturation strength",
    "aug_hue": "ColorJitter hue strength",
    "aug_padding": "padding (pixels) before the random crop",
    "aug_erasing": "random-erasing probability",
    "lr": "SGD learning rate (changeable on --resume)",
    "weight_decay": "SGD weight decay (changeable on --resume)",
    "sgd_momentum": "SGD momentum (changeable on --resume)",
    "step_size": "StepLR period in epochs (changeable on --resume)",
    "gamma": "StepLR decay factor (changeable on --resume)",
    # pseudo-labels
    "eps": "DBSCAN eps on the Jaccard distance",
    "min_samples": "DBSCAN min_samples",
    "k1": "k-reciprocal k1 (IR always, RGB in stage 1)",
    "k2": "k-reciprocal k2 (query expansion)",
    "stage2_rgb_k1": "k1 of the RGB Jaccard distance in stage 2",
    "cra_topk": "CRA ranking depth K",
    "cra_smooth_k": "RGB neighbours voting in CRA's smoothing",
    "cluster_flip": "cluster features averaged with the flipped image",
    "association": "stage-2 cross-modality association: cra (SDCL), centroid, hungarian "
    "(PGM-style cluster matching) or ot (Sinkhorn, uniform prior)",
    "bidirectional": "keep an RGB->IR association only where the IR->RGB association agrees",
    # memories and losses
    "memory_momentum": "cluster-memory momentum in stage 1",
    "first_epoch_memory_momentum": "cluster-memory momentum in epoch 0 (none: --memory-momentum)",
    "stage2_memory_momentum": "momentum of the shared stage-2 cluster memories",
    "memory_mode": "cluster-memory update: mean (official CM) or hard (CM_Hard)",
    "instance_momentum": "instance-memory momentum",
    "temp": "cluster-memory softmax temperature",
    "lambda_shallow": "weight of the shallow cluster-contrast term",
    "cnl_threshold": "CNL neighbour threshold, relative to the row maximum",
    "cnl_temp": "CNL softmax temperature",
    "homogeneous_start": "first epoch with homogeneous CNL terms",
    "heterogeneous_start": "first epoch with heterogeneous (cross-modality) CNL terms",
    "homogeneous_deep": "weight of the deep homogeneous CNL term",
    "homogeneous_shallow": "weight of the shallow homogeneous CNL term",
    "rgb_to_ir_deep": "weight of the deep RGB->IR CNL term",
    "rgb_to_ir_shallow": "weight of the shallow RGB->IR CNL term",
    "ir_to_rgb_deep": "weight of the deep IR->RGB CNL term",
    "ir_to_rgb_shallow": "weight of the shallow IR->RGB CNL term",
    "stage1_homogeneous": "scale of the homogeneous group in stage 1",
    "stage1_heterogeneous": "scale of the heterogeneous group in stage 1",
    "stage2_homogeneous": "scale of the homogeneous group in stage 2",
    "stage2_heterogeneous": "scale of the heterogeneous group in stage 2",
    # evaluation
    "eval_every": "evaluate every N epochs (0: only at the end)",
    "eval_before": "also evaluate before training",
    "trials": "SYSU-MM01 gallery draws averaged in the evaluation",
    "eval_batch_size": "images per batch in feature extraction",
    "rerank": "k-reciprocal re-ranking of the evaluation distances",
    # run
    "output_dir": "folder of the run: last.pth, log.jsonl, log.txt, config.json, "
    "results.json (locked while the run lives)",
    "seed": "random seed",
    "device": "auto (CUDA if available), cpu, cuda, cuda:N",
    "workers": "data-loader worker processes (none: chosen from the CPU count)",
    "threads": "torch CPU threads (none: torch's default)",
    "amp": "bfloat16 autocast for forward passes",
    "device_augmentation": "augment each training batch on the training device (workers only "
    "decode and resize; random parameters from a per-epoch generator)",
    "compile": "wrap the training forward in torch.compile",
    "gradient_checkpointing": "recompute activations in backward to save memory",
    "resume": "continue the run in --output-dir with its recorded settings",
    "overwrite": "start a new run in an --output-dir that already holds one (deletes its "
    "checkpoint and logs)",
    "stop_after": "end the process after N epochs (continue with --resume)",
    "dist_timeout": "seconds a process waits for the others in a collective before the run "
    "fails (multi-process runs)",
    "tensorboard": "write TensorBoard scalars (needs the tensorboard package)",
    "progress": "progress bars on a terminal, plain progress lines otherwise",
    "drop_path_rate": "stochastic depth rate (none: the model config's)",
}

#!/usr/bin/env python
"""SDCL on SYSU-MM01 (official recipe), or the CPU demo (no arguments, or --demo).

    python examples/train_sysu.py --data-dir /data/SYSU-MM01 --pretrained vit_base_ics_cfs_lup.pth
    torchrun --nproc_per_node=2 examples/train_sysu.py --data-dir ... --pretrained ...
    python examples/train_sysu.py --resume --output-dir outputs/sdcl_sysu  # continue a run
    python examples/train_sysu.py                     # demo: generated data, tiny ViT, CPU
    python examples/train_sysu.py --demo --epochs 4   # the demo preset with changes
    python examples/train_sysu.py --help              # every setting is a flag

The script only composes :mod:`sdcl_toolkit.engine`; see docs/training.md.
"""

import logging

from sdcl_toolkit.engine import START_ERRORS, run, sysu_config_from_argv


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the checkpoint-loading report (what --pretrained loaded, resized, left out) at INFO
    logging.getLogger("sdcl_toolkit.models").setLevel(logging.INFO)
    try:
        config = sysu_config_from_argv(argv, description=__doc__)
    except ValueError as error:  # bad settings, nothing to resume: a message, no traceback
        raise SystemExit(f"train_sysu.py: error: {error}") from None
    try:
        return run(config)
    except START_ERRORS as error:  # found before training: a message, no traceback
        raise SystemExit(f"train_sysu.py: error: {error}") from None


if __name__ == "__main__":
    main()

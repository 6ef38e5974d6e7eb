#!/usr/bin/env python
"""SDCL on SYSU-MM01 (official recipe), or the CPU demo when no --data-dir is given.

    python examples/train_sysu.py --data-dir /data/SYSU-MM01 --pretrained vit_base_ics_cfs_lup.pth
    torchrun --nproc_per_node=2 examples/train_sysu.py --data-dir ... --pretrained ...
    python examples/train_sysu.py                     # demo: generated data, tiny ViT, CPU
    python examples/train_sysu.py --help              # every setting is a flag

The script only composes :mod:`sdcl_toolkit.engine`; see docs/training.md.
"""

import logging

from sdcl_toolkit.engine import run, sysu_config_from_argv


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = sysu_config_from_argv(argv, description=__doc__)
    return run(config)


if __name__ == "__main__":
    main()

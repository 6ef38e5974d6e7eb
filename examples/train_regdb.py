#!/usr/bin/env python
"""SDCL on RegDB (official recipe: one model per trial).

    python examples/train_regdb.py --data-dir /data/RegDB \
        --pretrained vit_base_ics_cfs_lup.pth --regdb-trial 1
    for t in $(seq 1 10); do python examples/train_regdb.py --data-dir ... --regdb-trial $t \
        --output-dir outputs/regdb_trial$t; done

The script only composes :mod:`sdcl_toolkit.engine`; see docs/training.md.
"""

import logging

from sdcl_toolkit.engine import TrainConfig, parse_config, run


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(TrainConfig.regdb(), argv, description=__doc__)
    return run(config)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""SDCL on RegDB (official recipe: one model per trial).

    python examples/train_regdb.py --data-dir /data/RegDB \
        --pretrained vit_base_ics_cfs_lup.pth --regdb-trial 1
    for t in $(seq 1 10); do python examples/train_regdb.py --data-dir ... --regdb-trial $t \
        --output-dir outputs/regdb_trial$t; done

The script only composes :mod:`sdcl_toolkit.engine`; see docs/training.md.
"""

import logging

from sdcl_toolkit.engine import START_ERRORS, TrainConfig, parse_config, run


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the checkpoint-loading report (what --pretrained loaded, resized, left out) at INFO
    logging.getLogger("sdcl_toolkit.models").setLevel(logging.INFO)
    try:
        config = parse_config(TrainConfig.regdb(), argv, description=__doc__)
    except ValueError as error:  # bad settings, nothing to resume: a message, no traceback
        raise SystemExit(f"train_regdb.py: error: {error}") from None
    try:
        return run(config)
    except START_ERRORS as error:  # found before training: a message, no traceback
        raise SystemExit(f"train_regdb.py: error: {error}") from None


if __name__ == "__main__":
    main()

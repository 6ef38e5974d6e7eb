"""Command line entry point ``sdcl-make-dataset`` (also ``python -m sdcl_toolkit.data.synthetic``).

Part of :mod:`sdcl_toolkit.data.synthetic`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Optional

from .spec import SyntheticRegDBSpec, SyntheticSpec
from .trees import _check_root

_REGDB_PREFIX = "regdb_"
_REGDB_SEPARATE = {"identities"}  # RegDB fields with their own flag though SYSU has the name
_REGDB_ALIASES = {"images_per_modality": "--regdb-images"}  # the flag's older, shorter name


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_spec_flags(
    parser: argparse.ArgumentParser, spec_type: type, names: Iterable[str], prefix: str = ""
) -> None:
    """One ``--<prefix><field>`` flag per field of ``spec_type`` in ``names``, with the
    field's default and help."""
    by_name = {f.name: f for f in fields(spec_type)}
    for name in names:
        f = by_name[name]
        flags = [_flag(prefix + name)]
        if name in _REGDB_ALIASES and prefix == _REGDB_PREFIX:
            flags.append(_REGDB_ALIASES[name])
        kind = type(f.default)
        parser.add_argument(
            *flags,
            dest=prefix + name,
            type=kind,
            default=f.default,
            metavar=kind.__name__.upper(),
            help=f"{'RegDB: ' if prefix else ''}{f.metadata['help']} (default: %(default)s)",
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point ``sdcl-make-dataset``."""
    # the writers as the package exports them (so replacing ``synthetic.write_synthetic_*``
    # takes effect here, as when this was a single module)
    from . import write_synthetic_regdb, write_synthetic_sysu

    parser = argparse.ArgumentParser(
        prog="sdcl-make-dataset",
        description="Write a generated miniature visible-infrared re-ID dataset in the "
        "SYSU-MM01 layout (OUT/SYSU-MM01) and optionally the RegDB layout (OUT/RegDB).",
    )
    parser.add_argument("--out", required=True, help="output directory")
    sysu_names = [f.name for f in fields(SyntheticSpec)]
    _add_spec_flags(parser, SyntheticSpec, sysu_names)
    parser.add_argument("--regdb", action="store_true", help="also write OUT/RegDB")
    parser.add_argument(
        "--llcm",
        action="store_true",
        help="also write OUT/LLCM (LLCM layout, 12 people; size, seed, modality gap and "
        "nuisance from the flags above)",
    )
    # RegDB takes the shared settings (size, seed, modality gap, nuisance) from the flags above
    regdb_own = [
        f.name
        for f in fields(SyntheticRegDBSpec)
        if f.name not in sysu_names or f.name in _REGDB_SEPARATE
    ]
    _add_spec_flags(parser, SyntheticRegDBSpec, regdb_own, prefix=_REGDB_PREFIX)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing non-empty output folders"
    )
    args = parser.parse_args(argv)
    values = vars(args)
    out = Path(args.out)
    targets = [out / "SYSU-MM01"] + ([out / "RegDB"] if args.regdb else [])
    if args.llcm:
        targets.append(out / "LLCM")
    started = time.perf_counter()
    try:
        sysu_spec = SyntheticSpec(**{name: values[name] for name in sysu_names})
        regdb_spec = SyntheticRegDBSpec(
            **{
                f.name: values[_REGDB_PREFIX + f.name if f.name in regdb_own else f.name]
                for f in fields(SyntheticRegDBSpec)
            }
        )
        for target in targets:  # refuse before writing anything
            _check_root(target, args.overwrite, remedy="pass --overwrite")
        sysu = write_synthetic_sysu(targets[0], spec=sysu_spec, overwrite=args.overwrite)
        print(f"SYSU-MM01 layout: {sysu}")
        if args.regdb:
            regdb = write_synthetic_regdb(targets[1], spec=regdb_spec, overwrite=args.overwrite)
            print(f"RegDB layout:     {regdb}")
        if args.llcm:
            from .llcm import write_synthetic_llcm

            shared = ("height", "width", "seed", "ir_material_weight", "nuisance")
            llcm = write_synthetic_llcm(
                targets[-1], overwrite=args.overwrite, **{k: values[k] for k in shared}
            )
            print(f"LLCM layout:      {llcm}")
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0

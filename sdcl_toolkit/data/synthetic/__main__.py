"""``python -m sdcl_toolkit.data.synthetic``: the command line ``sdcl-make-dataset``."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

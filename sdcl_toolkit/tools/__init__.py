"""Command-line tools for after training (and before it): the console scripts

``sdcl-evaluate``       a checkpoint on SYSU-MM01 / RegDB / LLCM (tables, JSON, pictures)
``sdcl-extract``        test features of a split or an image folder to ``.npy``
``sdcl-export``         the shallow-deep model to TorchScript and ONNX
``sdcl-plot-run``       a finished run's curves from its ``log.jsonl``
``sdcl-check-dataset``  a dataset tree against its layout and the official counts

Each module has a ``main(argv) -> int``; see ``docs/tools.md``. This is an application layer
like :mod:`sdcl_toolkit.engine` (it may import everything; nothing imports it). matplotlib
(``pip install sdcl-toolkit[plot]``) and onnx / onnxruntime (``[onnx]``) are optional and
imported only where needed.
"""

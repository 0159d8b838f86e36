"""The edge node: bundle runtime (onnxruntime + tokenizers), local ranker, HTTP API. No torch, ever.

Nothing is re-exported here: importing a light submodule (`service.edge.cli_args`, which the `eibert` parser
needs for every command) must not load onnxruntime. Import from the submodules (`service.edge.encoder`, ...).
"""

__all__: list[str] = []

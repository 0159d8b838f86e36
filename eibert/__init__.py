"""The `eibert` command line: a thin package on top that only assembles each part's own `add_parser`.

Nothing in `service/`, `model_store/`, `simulators/` or `loadtests/` imports this package or spawns it.
"""

__all__: list[str] = []

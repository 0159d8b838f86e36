"""The compression pipeline, its evaluation, and the shipped bundles.

Importing this package is cheap and torch-free; torch is imported only inside training, teacher and export
code, so `eibert` works on an edge-only install and names the missing extra when a command needs it.
"""

__all__: list[str] = []

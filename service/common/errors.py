"""The root of eibert's exception tree and the branches more than one part raises; each app maps it to an HTTP
status in a single handler, and refines it with its own classes (`service.cloud.errors`).

EibertError
 └── BundleError      a bundle is missing files, fails its sha256, has a wrong schema or contract
"""

from __future__ import annotations


class EibertError(Exception):
    """Root of every error eibert raises on purpose."""


class BundleError(EibertError):
    """A model bundle cannot be trusted or opened."""

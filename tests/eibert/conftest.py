"""The CLI's end-to-end tests drive the same real cloud (uvicorn on a free port) as the simulator's tests."""

from tests.simulators.conftest import cloud, variant_bundle

__all__ = ["cloud", "variant_bundle"]

"""The cloud: signed model registry, staged rollout, privacy-preserving fleet metrics.

`create_app` and `Settings` are loaded on first use (PEP 562), so that importing a light submodule
(`service.cloud.cli`, which the `eibert` parser needs for every command) does not load the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.cloud.app import create_app
    from service.cloud.config import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.cloud.app import create_app

        return create_app
    if name == "Settings":
        from service.cloud.config import Settings

        return Settings
    raise AttributeError(f"module 'service.cloud' has no attribute {name!r}")

"""The cloud: signed model registry, staged rollout, privacy-preserving fleet metrics (issue 5)."""

from service.cloud.app import create_app
from service.cloud.config import Settings

__all__ = ["Settings", "create_app"]

"""The cloud: signed model registry, staged rollout, privacy-preserving fleet metrics (issue 5)."""

__all__: list[str] = []

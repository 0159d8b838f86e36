"""Device-fleet simulation, behaviour generators and fault injection (issue 6)."""

__all__: list[str] = []

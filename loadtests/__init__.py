"""Load tests: locust users for the edge and the cloud HTTP APIs, and `make load` (`python -m loadtests.run`).

Everything here talks HTTP to running servers; nothing imports torch or the serving code beyond
`service.common` (wire models and the LDP encoders a real device uses).
"""

__all__: list[str] = []

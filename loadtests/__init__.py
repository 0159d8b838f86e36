"""Tools that drive and measure the HTTP services: locust users for the edge and the cloud, `make load`
(`python -m loadtests.run`), the services' `eibert bench` sections (`bench_edge`, `bench_cloud`), the compose
stack's helpers, and the one stack runner (`stack`) that starts cloud, edge and Redis for all of them.

The locust users talk HTTP to running servers and import nothing beyond `service.common` (wire models and the
LDP encoders a real device uses); the benchmarks also time the edge runtime in process and reuse the model
pipeline's timing helpers (`model_store.benchmarks`). Nothing here imports torch at module level.
"""

__all__: list[str] = []

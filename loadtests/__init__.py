"""Tools that drive and measure the HTTP services: locust users for the edge and the cloud, `make load`
(`python -m loadtests.run`), the services' `eibert bench` sections (`BENCH_SECTIONS`: edge, cloud, serving)
and the compose stack's helpers. A peer of `simulators/`: neither imports the other.

The servers they measure are started by the dev stack (`service.devstack`); the locust users talk HTTP to
running servers and import nothing beyond `service.common` (wire models and the LDP encoders a real device
uses); the benchmarks also time the edge runtime in process. Nothing here imports torch or training code.
"""

__all__: list[str] = []

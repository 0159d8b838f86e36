"""The HTTP services' `eibert bench` sections: `edge`, `cloud` and `serving`, each started on its own servers.

`eibert/bench.py` assembles these with the model's sections (`model_store.cli.BENCH_SECTIONS`) into `eibert
bench`. Each entry imports its benchmark only when it runs, so building the root parser stays light.
"""

from __future__ import annotations

from service.devstack.bench_file import BenchRun, Section


def edge_section(run: BenchRun) -> str:
    from loadtests.bench_edge import bench_edge

    return bench_edge(run.bundle, run.command)


def cloud_section(run: BenchRun) -> str:
    from loadtests.bench_cloud import bench_cloud

    return bench_cloud(run.command)


def serving_section(run: BenchRun) -> str:
    from loadtests.bench_serving import bench_serving

    return bench_serving(run.bundle, run.command)


BENCH_SECTIONS: dict[str, Section] = {"edge": edge_section, "cloud": cloud_section, "serving": serving_section}

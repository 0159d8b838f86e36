"""What the tools share to run and measure the services on one machine: the stack runner (`processes`), a dev
cloud with its secrets and edge nodes (`stack`), the server-CPU meter and the `BENCHMARKS.md` section writer.

It sits below both tools (`simulators/`, `loadtests/`) and beside the services: it starts them by their own
entry points (`python -m service.cloud`, `python -m service.edge`) and talks to them over HTTP, so it imports
`service.common` only, never the edge's or the cloud's internals, and nothing above `service/`.
"""

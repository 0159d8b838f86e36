"""The flags of `eibert edge`, apart from the code that acts on them.

Kept free of any import beyond argparse because the main `eibert` parser is built for every subcommand:
`eibert build` on a training machine must not need the edge's crypto or web stack just to parse its flags.
"""

from __future__ import annotations

import argparse

# argparse attribute -> EdgeSettings field; only flags the user actually gave (not None) are passed on.
FLAG_FIELDS = {
    "bundle": "bundle",
    "cloud": "cloud",
    "host": "host",
    "port": "port",
    "threads": "threads",
    "cloud_public_key": "cloud_public_key",
    "cloud_public_key_file": "cloud_public_key_file",
    "device_id": "device_id",
    "enrolment_token_file": "enrolment_token_file",
    "state_dir": "state_dir",
    "poll_interval": "poll_interval_s",
    "max_batch_size": "max_batch_size",
    "max_wait_ms": "max_wait_ms",
    "batch_workers": "batch_workers",
    "cache_size": "cache_size",
    "log_level": "log_level",
    "max_pending_chars": "max_pending_chars",
    "reset_trust": "reset_trust",
}


# `eibert edge --help` ends with this: the settings a node with a cloud needs that are secrets, not flags.
EPILOG = """\
Every setting is also an environment variable EIBERT_EDGE_<NAME> (a flag wins). With --cloud a node needs:
  the cloud's public key     --cloud-public-key B64, --cloud-public-key-file F, EIBERT_EDGE_CLOUD_PUBLIC_KEY[_FILE]
  an enrolment token, once   --enrolment-token-file F, EIBERT_EDGE_ENROLMENT_TOKEN_FILE, or EIBERT_EDGE_ENROLMENT_TOKEN
                             (issued by the operator; kept out of flags, which other users can read in `ps`).
                             Without one the cloud refuses the node, and /readyz answers 503 enrolment_refused.
State (device token, trusted offer, downloaded bundles) lives in --state-dir; after a restart the node serves the
newest signed bundle it accepted there, not --bundle. Ports: 8080 by default (--port)."""


def add_edge_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `cmd_edge` understands beyond --bundle/--cloud/--port (which the main CLI already defines)."""
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default 1)")
    parser.add_argument("--cloud-public-key", help="base64 raw Ed25519 key the cloud signs manifests with")
    parser.add_argument("--cloud-public-key-file", help="file holding that key")
    parser.add_argument("--device-id", help="device id to enrol with (default: generated once, persisted)")
    parser.add_argument(
        "--enrolment-token-file", help="file holding the operator's enrolment token (EIBERT_EDGE_ENROLMENT_TOKEN_FILE)"
    )
    parser.add_argument("--state-dir", help="device token and downloaded bundles (default .eibert-edge)")
    parser.add_argument("--poll-interval", type=float, help="seconds between update checks (default 30)")
    parser.add_argument("--max-batch-size", type=int, help="texts per onnxruntime run (default 32)")
    parser.add_argument("--max-wait-ms", type=float, help="extra wait for a batch to fill (default 0)")
    parser.add_argument("--batch-workers", type=int, help="batches run at once, one thread each (default 1)")
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument("--batching", action="store_true", help="merge concurrent requests' texts (default off)")
    batching.add_argument("--no-batching", action="store_true", help="encode each request on its own (the default)")
    parser.add_argument("--cache-size", type=int, help="embedding cache rows (default 8192, 0 disables)")
    parser.add_argument("--log-level", help="debug|info|warning|error (default info)")
    parser.add_argument(
        "--max-pending-chars", type=int, help="encoding work admitted at once; past it, 429 (default 200000)"
    )
    parser.add_argument(
        "--reset-trust",
        action="store_true",
        default=None,
        help="after trusted_offer.json was lost: trust the cloud's next valid offer on first use (run once)",
    )

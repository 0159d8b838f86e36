"""`python -m loadtests.publish --enrolment-token PATH:N`: the flag the compose stack's publisher uses to issue
enrolment tokens parses, and malformed specs are refused."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadtests.publish import _token_spec, build_parser


def test_token_specs_parse() -> None:
    assert _token_spec("/secrets/enrolment-token-edge:2") == (Path("/secrets/enrolment-token-edge"), 2)
    for bad in ("/secrets/x", "/secrets/x:0", "/secrets/x:two", ":3"):
        with pytest.raises(argparse.ArgumentTypeError):
            _token_spec(bad)
    args = build_parser().parse_args(
        ["--bundle", "b", "--cloud", "http://c", "--enrolment-token", "/a:1", "--enrolment-token", "/b:5"]
    )
    assert args.enrolment_token == [(Path("/a"), 1), (Path("/b"), 5)]

"""`unlearn`: the command line for the unlearning service.

    export UNLEARN_URL=http://localhost:8000 UNLEARN_API_KEY=...
    unlearn datasets upload cohort-a train.safetensors --ids ids.txt
    unlearn models train --name m --dataset DATASET_ID --arch mlp \\
        --config '{"in_features": 20, "hidden": [64], "num_classes": 2}' --epochs 5 --wait
    unlearn delete MODEL_ID user-17 user-42 --reason "erasure request" --wait
    unlearn deletions list --status failed --all
    unlearn download MODEL_ID --version latest -o model.safetensors
    unlearn audit public-key -o audit-key.json
    unlearn receipt verify DELETION_ID --public-key audit-key.json

Results go to stdout: tables and `key value` lines, or JSON with --json; progress and messages go to stderr.
Exit status: 0 success, 1 the service refused or could not be reached, 2 usage error,
3 the job (training or deletion) failed, 4 an integrity check failed (checkpoint sha256, signatures, proofs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from unlearn_client._shared import DEFAULT_TIMEOUT_S, DEFAULT_URL
from unlearn_client.cli import audit, commands
from unlearn_client.cli.common import EXIT_ERROR, EXIT_INTEGRITY, UsageError
from unlearn_client.cli.output import Output, note
from unlearn_client.client import UnlearnClient
from unlearn_client.errors import ChecksumError, ClientError, VerificationError, WaitTimeout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearn",
        description="Command line for the unlearning service.",
        epilog="Exit status: 0 ok, 1 service error, 2 usage, 3 job failed, 4 integrity check failed.",
    )
    parser.add_argument("--url", default=os.environ.get("UNLEARN_URL", DEFAULT_URL), help="service URL ($UNLEARN_URL)")
    parser.add_argument("--api-key", default=os.environ.get("UNLEARN_API_KEY"), help="API key ($UNLEARN_API_KEY)")
    parser.add_argument("--http-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per HTTP request")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parsers(sub)
    audit.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(as_json=args.json)
    offline = getattr(args, "offline_ok", False) and args.file and args.public_key
    if not offline and not args.api_key:
        parser.error("no API key: pass --api-key or set UNLEARN_API_KEY")
    try:
        if offline:
            return args.func(None, out, args)
        with UnlearnClient(args.url, args.api_key, timeout=args.http_timeout) as client:
            return args.func(client, out, args)
    except UsageError as exc:
        parser.error(str(exc))
    except (ChecksumError, VerificationError) as exc:
        note(f"error: {exc.detail if isinstance(exc, ChecksumError) else exc}")
        return EXIT_INTEGRITY
    except WaitTimeout as exc:
        note(f"error: {exc.detail} (check again with: unlearn status ...)")
        return EXIT_ERROR
    except ClientError as exc:
        note(f"error: {exc}")
        for key in ("unknown_ids", "conflicts", "errors"):
            if key in exc.problem:
                note(f"  {key}: {json.dumps(exc.problem[key], default=str)[:2000]}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    return EXIT_ERROR  # parser.error exits; kept for type checkers


if __name__ == "__main__":
    sys.exit(main())

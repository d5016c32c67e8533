"""`unlearn`: the command line for the unlearning service, built on app.client.

    export UNLEARN_URL=http://localhost:8000 UNLEARN_API_KEY=...
    unlearn datasets upload cohort-a train.safetensors --ids ids.txt
    unlearn models train --name m --dataset DATASET_ID --arch mlp \\
        --config '{"in_features": 20, "hidden": [64], "num_classes": 2}' --epochs 5 --wait
    unlearn delete MODEL_ID user-17 user-42 --reason "erasure request" --wait
    unlearn download MODEL_ID --version latest -o model.safetensors
    unlearn receipt verify DELETION_ID --public-key audit-key.pem

Results are JSON on stdout; progress and messages go to stderr.
Exit status: 0 success, 1 the service refused or could not be reached, 2 usage error,
3 the job (training or deletion) failed, 4 an integrity check failed (checkpoint sha256, receipt signature/proofs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app.client import DEFAULT_URL, ChecksumError, ClientError, Deletion, UnlearnClient, WaitTimeout

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_JOB_FAILED, EXIT_INTEGRITY = 0, 1, 2, 3, 4
BAR_WIDTH = 30  # characters in the progress bar


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


def emit(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def note(message: str) -> None:
    print(message, file=sys.stderr)


class ProgressBar:
    """A plain-text progress line: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""

    def __call__(self, deletion: Deletion) -> None:
        status = deletion.get("status") or "?"
        progress = deletion.get("progress")
        fraction = 1.0 if status == "succeeded" else min(max(float(progress or 0.0), 0.0), 1.0)
        filled = round(fraction * BAR_WIDTH)
        stage = deletion.get("stage")
        label = f"{status}: {stage}" if stage and stage != status else status
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}% {label}"
        if line == self.last:
            return
        self.last = line
        if self.tty:
            self.stream.write("\r" + line.ljust(BAR_WIDTH + 40))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from exc


def _json_file(path: str, what: str) -> Any:
    try:
        return _json_arg(Path(path).read_text(encoding="utf-8"), what)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _existing_file(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise UsageError(f"{what} {path} does not exist or is not a file")
    return path


def _architecture(args: argparse.Namespace) -> dict[str, Any]:
    config = _json_arg(args.config, "--config") if args.config else {}
    if not isinstance(config, dict):
        raise UsageError("--config must be a JSON object")
    return {"name": args.arch, "config": config}


# --- commands: each returns an exit status -------------------------------------------------------------------


def cmd_datasets_upload(client: UnlearnClient, args: argparse.Namespace) -> int:
    _existing_file(args.file, "data set file")
    if args.ids:
        _existing_file(args.ids, "ids file")
    emit(client.upload_dataset(args.name, args.file, ids_path=args.ids))
    return EXIT_OK


def cmd_datasets_get(client: UnlearnClient, args: argparse.Namespace) -> int:
    emit(client.get_dataset(args.dataset_id))
    return EXIT_OK


def cmd_models_create(client: UnlearnClient, args: argparse.Namespace) -> int:
    _existing_file(args.checkpoint, "checkpoint")
    if args.spec:
        spec = _json_file(args.spec, "spec")
    else:
        missing = [f"--{n}" for n in ("name", "dataset", "arch") if not getattr(args, n)]
        if missing:
            raise UsageError(f"give --spec FILE, or {', '.join(missing)}")
        spec = {"name": args.name, "dataset_id": args.dataset, "architecture": _architecture(args)}
    emit(client.create_model(spec, args.checkpoint))
    return EXIT_OK


def cmd_models_train(client: UnlearnClient, args: argparse.Namespace) -> int:
    train = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "alpha": args.alpha,
        "seed": args.seed,
    }
    model = client.train_model(name=args.name, dataset_id=args.dataset, architecture=_architecture(args), train=train)
    if args.wait:
        note(f"training model {model['id']} ...")
        model = client.wait_for_model(model["id"], timeout=args.timeout, poll_interval=args.poll)
    emit(model)
    if model.get("status") == "failed":
        note(f"error: training failed: {model.get('error') or 'no detail'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def cmd_models_get(client: UnlearnClient, args: argparse.Namespace) -> int:
    emit(client.get_model(args.model_id))
    return EXIT_OK


def cmd_models_versions(client: UnlearnClient, args: argparse.Namespace) -> int:
    emit(client.list_versions(args.model_id))
    return EXIT_OK


def _sample_ids(args: argparse.Namespace) -> list[str]:
    ids = list(args.sample_ids)
    if args.ids_file:
        lines = Path(_existing_file(args.ids_file, "ids file")).read_text(encoding="utf-8").splitlines()
        ids += [line.strip() for line in lines if line.strip()]
    if not ids:
        raise UsageError("name at least one sample id (arguments or --ids-file)")
    return ids


def _finish_deletion(deletion: Deletion) -> int:
    emit(deletion)
    if deletion.get("status") == "failed":
        note(f"error: deletion {deletion.get('id')} failed: {deletion.get('error') or 'no detail'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def cmd_delete(client: UnlearnClient, args: argparse.Namespace) -> int:
    deletion = client.request_deletion(
        args.model_id,
        _sample_ids(args),
        reason=args.reason,
        method=args.method,
        purpose=args.purpose,
        idempotency_key=args.idempotency_key,
    )
    if not args.wait:
        return _finish_deletion(deletion)
    note(f"deletion {deletion['id']} accepted; waiting")
    return _wait(client, deletion["id"], args)


def _wait(client: UnlearnClient, deletion_id: str, args: argparse.Namespace) -> int:
    bar = ProgressBar()
    try:
        deletion = client.wait_for_deletion(deletion_id, timeout=args.timeout, poll_interval=args.poll, on_progress=bar)
    finally:
        bar.close()
    return _finish_deletion(deletion)


def cmd_status(client: UnlearnClient, args: argparse.Namespace) -> int:
    if args.wait:
        return _wait(client, args.deletion_id, args)
    return _finish_deletion(client.get_deletion(args.deletion_id))


def cmd_download(client: UnlearnClient, args: argparse.Namespace) -> int:
    version: int | str = int(args.version) if args.version.isdigit() else args.version
    if version == "latest":  # pin the number first, so a version published meanwhile cannot swap the file
        version = client.get_version(args.model_id, "latest")["version"]
    dest = Path(args.output or f"{args.model_id}-v{version}.safetensors")
    result = client.download_checkpoint(args.model_id, version, dest, expected_sha256=args.sha256)
    done = "downloaded" if result.transferred else "already up to date:"
    note(f"{done} version {version} at {result.path} ({result.size} bytes, sha256 {result.sha256} verified)")
    emit(
        {
            "model_id": args.model_id,
            "version": version,
            "path": str(result.path),
            "sha256": result.sha256,
            "transferred": result.transferred,
        }
    )
    return EXIT_OK


def cmd_receipt_get(client: UnlearnClient, args: argparse.Namespace) -> int:
    receipt = client.get_receipt(args.deletion_id)
    if args.output:
        Path(args.output).write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        note(f"receipt written to {args.output}")
    else:
        emit(receipt)
    return EXIT_OK


def cmd_receipt_verify(client: UnlearnClient, args: argparse.Namespace) -> int:
    from app.audit.exceptions import VerificationError

    if (args.deletion_id is None) == (args.file is None):
        raise UsageError("give a DELETION_ID or --file RECEIPT.json (one of them)")
    receipt = _json_file(args.file, "receipt") if args.file else client.get_receipt(args.deletion_id)
    if args.public_key:
        try:
            key: Any = Path(args.public_key).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read public key {args.public_key}: {exc.strerror}") from exc
        source = args.public_key
    else:
        key = client.get_public_key()
        source = f"{client.base_url}/v1/audit/public-key (not pinned: pass --public-key to check against your copy)"
    try:
        from app.client import verify_receipt

        key_id = verify_receipt(receipt, key)
    except (VerificationError, ValueError) as exc:
        note(f"receipt REJECTED: {exc}")
        return EXIT_INTEGRITY
    request = receipt.get("request") or {}
    note(f"receipt verified: deletion {request.get('id')} ({request.get('status')}), key {key_id} from {source}")
    emit({"verified": True, "deletion_id": request.get("id"), "key_id": key_id})
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------------------


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status checks (default 0.5)")


def _add_arch_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--name", required=required, help="model name")
    parser.add_argument("--dataset", required=required, help="data set id the model is trained on")
    parser.add_argument(
        "--arch",
        required=required,
        help="an installed architecture (GET /v1/architectures: logreg, mlp, lenet, ... or a plugin)",
    )
    parser.add_argument("--config", help='architecture config as JSON, e.g. \'{"in_features": 20, "num_classes": 2}\'')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearn",
        description="Command line for the unlearning service.",
        epilog="Exit status: 0 ok, 1 service error, 2 usage, 3 job failed, 4 integrity check failed.",
    )
    parser.add_argument("--url", default=os.environ.get("UNLEARN_URL", DEFAULT_URL), help="service URL ($UNLEARN_URL)")
    parser.add_argument("--api-key", default=os.environ.get("UNLEARN_API_KEY"), help="API key ($UNLEARN_API_KEY)")
    parser.add_argument("--http-timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    datasets = commands.add_parser("datasets", help="upload and inspect data sets")
    datasets_sub = datasets.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = datasets_sub.add_parser("upload", help="upload a safetensors data set")
    p.add_argument("name")
    p.add_argument("file", help="safetensors with features, labels (optional holdout_features, holdout_labels)")
    p.add_argument("--ids", help="text file of sample ids, one per line (default: row numbers)")
    p.set_defaults(func=cmd_datasets_upload)
    p = datasets_sub.add_parser("get", help="data set metadata")
    p.add_argument("dataset_id")
    p.set_defaults(func=cmd_datasets_get)

    models = commands.add_parser("models", help="register, train and inspect models")
    models_sub = models.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = models_sub.add_parser("create", help="register a trained checkpoint as version 1")
    p.add_argument("--checkpoint", required=True, help="safetensors state_dict matching the architecture")
    p.add_argument("--spec", help="JSON file {name, dataset_id, architecture}; instead of --name/--dataset/--arch")
    _add_arch_options(p, required=False)
    p.set_defaults(func=cmd_models_create)
    p = models_sub.add_parser("train", help="have the service train version 1")
    _add_arch_options(p, required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.005, help="gradient-restriction weight (0 disables)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wait", action="store_true", help="wait until training ends")
    _add_wait_options(p)
    p.set_defaults(func=cmd_models_train)
    p = models_sub.add_parser("get", help="a model with its status and latest version")
    p.add_argument("model_id")
    p.set_defaults(func=cmd_models_get)
    p = models_sub.add_parser("versions", help="all versions of a model, newest first")
    p.add_argument("model_id")
    p.set_defaults(func=cmd_models_versions)

    p = commands.add_parser("delete", help="request the deletion of training samples from a model")
    p.add_argument("model_id")
    p.add_argument("sample_ids", nargs="*", help="sample ids to forget")
    p.add_argument("--ids-file", help="text file of sample ids, one per line")
    p.add_argument("--reason", help="why (kept in the audit log)")
    p.add_argument("--method", choices=["iau", "retrain"], help="iau (default on the service) or retrain (exact)")
    p.add_argument(
        "--purpose",
        choices=["privacy", "poison"],
        help="privacy (default on the service) or poison (remove what the rows taught)",
    )
    p.add_argument("--idempotency-key", help="repeat-safe key: the same key and body return the original request")
    p.add_argument("--wait", action="store_true", help="show progress until the deletion succeeds or fails")
    _add_wait_options(p)
    p.set_defaults(func=cmd_delete)

    p = commands.add_parser("status", help="state of a deletion request")
    p.add_argument("deletion_id")
    p.add_argument("--wait", action="store_true", help="show progress until it succeeds or fails")
    _add_wait_options(p)
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("download", help="download a checkpoint, checking its sha256")
    p.add_argument("model_id")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    p.add_argument("-o", "--output", help="file to write (default MODEL_ID-vN.safetensors)")
    p.add_argument("--sha256", help="also require this sha256")
    p.set_defaults(func=cmd_download)

    receipt = commands.add_parser("receipt", help="fetch and verify signed deletion receipts")
    receipt_sub = receipt.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = receipt_sub.add_parser("get", help="fetch the signed receipt of a deletion")
    p.add_argument("deletion_id")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_receipt_get)
    p = receipt_sub.add_parser("verify", help="verify a receipt's signature, tree head and inclusion proofs")
    p.add_argument("deletion_id", nargs="?", help="fetch this deletion's receipt from the service")
    p.add_argument("--file", help="verify a receipt saved earlier instead")
    p.add_argument("--public-key", help="the audit log's public key (PEM, base64 raw, or the public-key JSON)")
    p.set_defaults(func=cmd_receipt_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    needs_key = not (args.command == "receipt" and args.subcommand == "verify" and args.file and args.public_key)
    if needs_key and not args.api_key:
        parser.error("no API key: pass --api-key or set UNLEARN_API_KEY")
    try:
        with UnlearnClient(args.url, args.api_key, timeout=args.http_timeout) as client:
            return args.func(client, args)
    except UsageError as exc:
        parser.error(str(exc))
    except ChecksumError as exc:
        note(f"error: {exc.detail}")
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

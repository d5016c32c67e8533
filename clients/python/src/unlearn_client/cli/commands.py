"""The resource commands: data sets, models, deletions, checkpoints, keys."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_client.cli.common import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    UsageError,
    add_list_options,
    add_wait_options,
    existing_file,
    json_arg,
    json_file,
    read_text,
    show_list,
)
from unlearn_client.cli.output import Output, Progress, note
from unlearn_client.client import UnlearnClient
from unlearn_client.types import Deletion

DATASET_COLUMNS = ("id", "name", "num_rows", "num_holdout", "num_classes", "deleted_count", "created_at")
MODEL_COLUMNS = ("id", "name", "status", "latest_version", "dataset_id", "created_at")
VERSION_COLUMNS = ("version", "parent_version", "state", "checkpoint_sha256", "created_at")
DELETION_COLUMNS = ("id", "model_id", "status", "stage", "progress", "sample_count", "result_version", "created_at")
KEY_COLUMNS = ("id", "name", "role", "prefix", "tenant_id", "revoked_at")


def _architecture(args: argparse.Namespace) -> dict[str, Any]:
    config = json_arg(args.config, "--config") if args.config else {}
    if not isinstance(config, dict):
        raise UsageError("--config must be a JSON object")
    return {"name": args.arch, "config": config}


# --- data sets ------------------------------------------------------------------------------------------------


def datasets_upload(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    existing_file(args.file, "data set file")
    if args.ids:
        existing_file(args.ids, "ids file")
    out.value(client.upload_dataset(args.name, args.file, ids_path=args.ids))
    return EXIT_OK


def datasets_get(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    out.value(client.get_dataset(args.dataset_id))
    return EXIT_OK


def datasets_list(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    return show_list(out, args, client.list_datasets, DATASET_COLUMNS)


def datasets_erase(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    erasure = client.erase_samples(args.dataset_id, _sample_ids(args), reason=args.reason, method=args.method)
    if args.wait:
        progress = Progress()
        try:
            erasure = client.wait_for_erasure(
                erasure["id"], timeout=args.timeout, poll_interval=args.poll, on_progress=progress.deletion
            )
        finally:
            progress.close()
    out.value(erasure)
    if erasure.get("status") == "failed":
        note(f"error: erasure {erasure.get('id')} failed: {erasure.get('error') or 'no detail'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def datasets_delete(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    client.delete_dataset(args.dataset_id)
    note(f"data set {args.dataset_id} removed")
    return EXIT_OK


# --- models ---------------------------------------------------------------------------------------------------


def models_create(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    existing_file(args.checkpoint, "checkpoint")
    if args.spec:
        spec = json_file(args.spec, "spec")
    else:
        missing = [f"--{n}" for n in ("name", "dataset", "arch") if not getattr(args, n)]
        if missing:
            raise UsageError(f"give --spec FILE, or {', '.join(missing)}")
        spec = {"name": args.name, "dataset_id": args.dataset, "architecture": _architecture(args)}
    out.value(client.create_model(spec, args.checkpoint))
    return EXIT_OK


def models_train(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "alpha": args.alpha}
    train["seed"] = args.seed
    model = client.train_model(name=args.name, dataset_id=args.dataset, architecture=_architecture(args), train=train)
    if args.wait:
        progress = Progress()
        try:
            model = client.wait_for_model(
                model["id"], timeout=args.timeout, poll_interval=args.poll, on_progress=progress.training
            )
        finally:
            progress.close()
    out.value(model)
    if model.get("status") == "failed":
        note(f"error: training failed: {model.get('error') or 'no detail'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def architectures(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    found = client.list_architectures()
    out.table(found.get("items", []), ("name", "version", "source", "description"), page=found)
    return EXIT_OK


def models_get(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    out.value(client.get_model(args.model_id))
    return EXIT_OK


def models_list(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    fetch = lambda **page: client.list_models(dataset_id=args.dataset, **page)  # noqa: E731
    return show_list(out, args, fetch, MODEL_COLUMNS)


def models_versions(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    fetch = lambda **page: client.list_versions(args.model_id, **page)  # noqa: E731
    return show_list(out, args, fetch, VERSION_COLUMNS)


def models_delete(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    client.delete_model(args.model_id)
    note(f"model {args.model_id} removed")
    return EXIT_OK


# --- deletions ------------------------------------------------------------------------------------------------


def _sample_ids(args: argparse.Namespace) -> list[str]:
    ids = list(args.sample_ids)
    if args.ids_file:
        lines = read_text(existing_file(args.ids_file, "ids file"), "ids file").splitlines()
        ids += [line.strip() for line in lines if line.strip()]
    if not ids:
        raise UsageError("name at least one sample id (arguments or --ids-file)")
    return ids


def _finish(out: Output, deletion: Deletion) -> int:
    out.value(deletion)
    if deletion.get("status") == "failed":
        note(f"error: deletion {deletion.get('id')} failed: {deletion.get('error') or 'no detail'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def _wait(client: UnlearnClient, out: Output, deletion_id: str, args: argparse.Namespace) -> int:
    progress = Progress()
    try:
        deletion = client.wait_for_deletion(
            deletion_id, timeout=args.timeout, poll_interval=args.poll, on_progress=progress.deletion
        )
    finally:
        progress.close()
    return _finish(out, deletion)


def delete(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    deletion = client.request_deletion(
        args.model_id,
        _sample_ids(args),
        reason=args.reason,
        method=args.method,
        purpose=args.purpose,
        idempotency_key=args.idempotency_key,
    )
    if not args.wait:
        return _finish(out, deletion)
    note(f"deletion {deletion['id']} accepted; waiting")
    return _wait(client, out, deletion["id"], args)


def status(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    if args.wait:
        return _wait(client, out, args.deletion_id, args)
    return _finish(out, client.get_deletion(args.deletion_id))


def deletions_list(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    filters = {"model_id": args.model, "status": args.status, "since": args.since, "until": args.until}
    fetch = lambda **page: client.list_deletions(**filters, **page)  # noqa: E731
    return show_list(out, args, fetch, DELETION_COLUMNS)


def download(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    version: int | str = int(args.version) if args.version.isdigit() else args.version
    if version == "latest":  # pin the number first, so a version published meanwhile cannot swap the file
        version = client.get_version(args.model_id, "latest")["version"]
    dest = Path(args.output or f"{args.model_id}-v{version}.safetensors")
    result = client.download_checkpoint(args.model_id, version, dest, expected_sha256=args.sha256)
    done = "downloaded" if result.transferred else "already up to date:"
    note(f"{done} version {version} at {result.path} ({result.size} bytes, sha256 {result.sha256} verified)")
    shown = {"model_id": args.model_id, "version": version, "path": str(result.path), "sha256": result.sha256}
    out.value(shown | {"transferred": result.transferred})
    return EXIT_OK


# --- keys -----------------------------------------------------------------------------------------------------


def keys_list(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    fetch = lambda **page: client.list_keys(tenant_id=args.tenant, **page)  # noqa: E731
    return show_list(out, args, fetch, KEY_COLUMNS)


def keys_create(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    created = client.create_key(args.name, args.role, tenant_id=args.tenant)
    note("the raw key is shown this once; only its sha256 is kept by the service")
    out.value(created)
    return EXIT_OK


def keys_revoke(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    client.revoke_key(args.key_id)
    note(f"key {args.key_id} revoked")
    return EXIT_OK


# --- parsers --------------------------------------------------------------------------------------------------


def _sub(commands: Any, name: str, help: str) -> Any:
    return commands.add_parser(name, help=help).add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")


def _arch_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--name", required=required, help="model name")
    parser.add_argument("--dataset", required=required, help="data set id the model is trained on")
    parser.add_argument("--arch", required=required, help="an installed architecture (unlearn architectures)")
    parser.add_argument("--config", help='architecture config as JSON, e.g. \'{"in_features": 20, "num_classes": 2}\'')


def add_parsers(commands: Any) -> None:
    sub = _sub(commands, "datasets", "upload, list and inspect data sets")
    p = sub.add_parser("upload", help="upload a safetensors data set")
    p.add_argument("name")
    p.add_argument("file", help="safetensors with features, labels (optional holdout_features, holdout_labels)")
    p.add_argument("--ids", help="text file of sample ids, one per line (default: row numbers)")
    p.set_defaults(func=datasets_upload)
    p = sub.add_parser("get", help="data set metadata")
    p.add_argument("dataset_id")
    p.set_defaults(func=datasets_get)
    p = sub.add_parser("list", help="the tenant's data sets, newest first")
    add_list_options(p)
    p.set_defaults(func=datasets_list)
    p = sub.add_parser("erase", help="erase samples from every model trained on a data set, then from the data set")
    p.add_argument("dataset_id")
    p.add_argument("sample_ids", nargs="*", help="sample ids to erase")
    p.add_argument("--ids-file", help="text file of sample ids, one per line")
    p.add_argument("--reason", help="why (kept with the erasure)")
    p.add_argument("--method", choices=["iau", "retrain"], help="how the models forget them (default iau)")
    p.add_argument("--wait", action="store_true", help="show progress until the rows are erased from storage")
    add_wait_options(p)
    p.set_defaults(func=datasets_erase)
    p = sub.add_parser("delete", help="remove a data set (no model may use it)")
    p.add_argument("dataset_id")
    p.set_defaults(func=datasets_delete)

    sub = _sub(commands, "models", "register, train, list and inspect models")
    p = sub.add_parser("create", help="register a trained checkpoint as version 1")
    p.add_argument("--checkpoint", required=True, help="safetensors state_dict matching the architecture")
    p.add_argument("--spec", help="JSON file {name, dataset_id, architecture}; instead of --name/--dataset/--arch")
    _arch_options(p, required=False)
    p.set_defaults(func=models_create)
    p = sub.add_parser("train", help="have the service train version 1")
    _arch_options(p, required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.005, help="gradient-restriction weight (0 disables)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wait", action="store_true", help="show progress until training ends")
    add_wait_options(p)
    p.set_defaults(func=models_train)
    p = sub.add_parser("get", help="a model with its status and latest version")
    p.add_argument("model_id")
    p.set_defaults(func=models_get)
    p = sub.add_parser("list", help="the tenant's models, newest first")
    p.add_argument("--dataset", help="only models trained on this data set")
    add_list_options(p)
    p.set_defaults(func=models_list)
    p = sub.add_parser("versions", help="a model's versions, newest first")
    p.add_argument("model_id")
    add_list_options(p)
    p.set_defaults(func=models_versions)
    p = sub.add_parser("delete", help="remove a model, its versions and its deletion requests")
    p.add_argument("model_id")
    p.set_defaults(func=models_delete)

    p = commands.add_parser("architectures", help="the architectures the service can build (zoo and plugins)")
    p.set_defaults(func=architectures)

    p = commands.add_parser("delete", help="request the deletion of training samples from a model")
    p.add_argument("model_id")
    p.add_argument("sample_ids", nargs="*", help="sample ids to forget")
    p.add_argument("--ids-file", help="text file of sample ids, one per line")
    p.add_argument("--reason", help="why (kept with the request)")
    p.add_argument("--method", choices=["iau", "retrain"], help="iau (the service's default) or retrain (exact)")
    p.add_argument(
        "--purpose",
        choices=["privacy", "poison"],
        help="privacy (the service's default) or poison (remove what the rows taught)",
    )
    p.add_argument("--idempotency-key", help="repeat-safe key: the same key and body return the original request")
    p.add_argument("--wait", action="store_true", help="show progress until the deletion succeeds or fails")
    add_wait_options(p)
    p.set_defaults(func=delete)

    p = commands.add_parser("status", help="state of a deletion request")
    p.add_argument("deletion_id")
    p.add_argument("--wait", action="store_true", help="show progress until it succeeds or fails")
    add_wait_options(p)
    p.set_defaults(func=status)

    sub = _sub(commands, "deletions", "list deletion requests")
    p = sub.add_parser("list", help="deletion requests, newest first")
    p.add_argument("--model", help="only this model's requests")
    p.add_argument("--status", choices=["queued", "running", "succeeded", "failed"])
    p.add_argument("--since", help="created at or after this ISO 8601 time")
    p.add_argument("--until", help="created before this ISO 8601 time")
    add_list_options(p)
    p.set_defaults(func=deletions_list)

    p = commands.add_parser("download", help="download a checkpoint, checking its sha256")
    p.add_argument("model_id")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    p.add_argument("-o", "--output", help="file to write (default MODEL_ID-vN.safetensors)")
    p.add_argument("--sha256", help="also require this sha256")
    p.set_defaults(func=download)

    sub = _sub(commands, "keys", "API keys (admin)")
    p = sub.add_parser("list", help="the tenant's API keys (never the raw keys)")
    p.add_argument("--tenant", help="another tenant's keys (platform admins)")
    add_list_options(p)
    p.set_defaults(func=keys_list)
    p = sub.add_parser("create", help="create a key; the raw key is printed once")
    p.add_argument("name")
    p.add_argument("role", choices=["admin", "operator", "requester", "reader"])
    p.add_argument("--tenant", help="tenant the key acts for (platform admins)")
    p.set_defaults(func=keys_create)
    p = sub.add_parser("revoke", help="revoke a key")
    p.add_argument("key_id")
    p.set_defaults(func=keys_revoke)

"""Serve the API with several processes that share the load evenly: `python -m app.serve --workers N`.

`uvicorn --workers N` lets every process accept from one shared listening socket; when many connections arrive
together, whichever process wakes first accepts most of them, and keep-alive connections then stay unevenly
spread for their whole life (in the service benchmark one of two processes took 90% of the requests in some
runs). Here every process listens on its own socket bound with SO_REUSEPORT, so the kernel spreads new
connections across the processes itself. Linux (and other systems with SO_REUSEPORT); one process serves as
plain uvicorn.

The parent starts the processes and waits: when one exits, it stops the others and exits with an error, so the
container or service manager restarts the whole server; SIGTERM and SIGINT stop them all, and a process whose
parent is gone (killed with SIGKILL) stops itself.

Logs: every process writes JSON lines to stderr (app.core.logging), uvicorn's own lines included: uvicorn is
started without a logging configuration of its own, so its loggers reach the one JSON handler.
"""

import argparse
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time

APP = "app.main:create_app"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _configure_logging() -> str:
    """JSON lines for this process's loggers; returns the log level for uvicorn's."""
    from app.core.config import get_settings
    from app.core.logging import configure_logging

    level = get_settings().log_level
    configure_logging(level)
    return level.lower()


def _config(host: str, port: int):
    import uvicorn

    # log_config=None: uvicorn sets its loggers' levels only, and their records go to the JSON handler.
    # access_log=False: the app logs `http.request` (with the request id) for every request itself.
    level = _configure_logging()
    return uvicorn.Config(APP, factory=True, host=host, port=port, access_log=False, log_level=level, log_config=None)


def _stop_when_orphaned(parent: int, every_s: float = 1.0) -> None:
    """Stop this process (SIGTERM: uvicorn shuts down cleanly) once its launcher is gone, so that a launcher
    killed with SIGKILL leaves no server behind."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _serve(host: str, port: int, parent: int) -> None:
    import uvicorn

    _stop_when_orphaned(parent)
    uvicorn.Server(_config(host, port)).run(sockets=[_listen(host, port)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="default: $PORT, else 8000")
    ap.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="API processes (default: $WEB_CONCURRENCY, else 1); one per core",
    )
    args = ap.parse_args(argv)
    _configure_logging()
    if args.workers <= 1:
        import uvicorn

        uvicorn.Server(_config(args.host, args.port)).run()
        return 0
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_serve, args=(args.host, args.port, os.getpid()), daemon=False)
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.start()

    def stop(*_args) -> None:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sentinels = {proc.sentinel: proc for proc in procs}
    multiprocessing.connection.wait(list(sentinels))  # the first process to exit ends the server
    stop()
    for proc in procs:
        proc.join(timeout=10)
    failed = [proc.exitcode for proc in procs if proc.exitcode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

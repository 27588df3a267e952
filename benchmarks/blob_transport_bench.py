"""Client CPU per blob call: the SDK with its default transport, the SDK on ``StdlibTransport``, and
``BlobRest`` (the REST calls a turn makes).

The calls a turn makes (a 1 KB PUT, a GET, an empty prefix listing), each ``--calls`` times against
one in-memory Azurite, one client after the other and then again in the reverse order (the better of
the two kept). Printed: CPU (this process's, user + system) and wall time per call, and each client's
CPU / the SDK default's. The last line is JSON.

    .venv/bin/python benchmarks/blob_transport_bench.py [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info
from azure.storage.blob import BlobServiceClient, ContainerClient
from devhost_bench import REPO, free_ports

from durableagent._blob_rest import BlobRest
from durableagent._blob_transport import StdlibTransport
from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess

DATA = b"x" * 1024


CLIENTS = ("default", "transport", "rest")


def calls(container: ContainerClient, rest: BlobRest | None = None) -> dict[str, Callable[[], Any]]:
    if rest is not None:
        return {
            "put 1 KB": lambda: rest.put("bench/turn.json", DATA),
            "get 1 KB": lambda: rest.get("bench/turn.json"),
            "list, nothing found": lambda: rest.names("bench/none/"),
        }
    return {
        "put 1 KB": lambda: container.upload_blob("bench/turn.json", DATA, overwrite=True),
        "get 1 KB": lambda: container.download_blob("bench/turn.json").readall(),
        "list, nothing found": lambda: list(container.list_blobs(name_starts_with="bench/none/")),
    }


def measure(fn: Callable[[], Any], count: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call, after a warm-up."""
    for _ in range(20):
        fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        fn()
    return (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    azurite = AzuriteProcess(Path(tempfile.mkdtemp()), ports=AzuritePorts(*free_ports(3)), in_memory=True)
    azurite.start()
    try:
        default = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("bench")
        default.create_container()
        transport = BlobServiceClient.from_connection_string(azurite.connection_string, transport=StdlibTransport())
        rest = BlobRest.for_container(default)
        assert rest is not None
        clients = {
            "default": calls(default),
            "transport": calls(transport.get_container_client("bench")),
            "rest": calls(default, rest),
        }
        samples: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in CLIENTS}
        for order in (CLIENTS, tuple(reversed(CLIENTS))):
            for name in order:
                for call, fn in clients[name].items():
                    samples[name].setdefault(call, []).append(measure(fn, args.calls))
    finally:
        azurite.stop()
    result: dict[str, Any] = {"calls": args.calls, "machine": machine_info()}
    print(f"blob calls, {args.calls} each, twice per client; {command_line(REPO)}")
    print("CPU and wall ms per call (CPU / the SDK default's)")
    print(f"{'call':<22}" + "".join(f" {name:>24}" for name in CLIENTS))
    for call in samples["default"]:
        best = {name: (min(cpu for cpu, _ in samples[name][call]), min(wall for _, wall in samples[name][call]))
                for name in CLIENTS}  # fmt: skip
        result[call] = {
            f"{name}_{kind}_ms": best[name][i] for name in CLIENTS for i, kind in enumerate(("cpu", "wall"))
        }
        cells = [f"{cpu:.3f} ({cpu / best['default'][0]:.2f}) / {wall:.2f}" for cpu, wall in best.values()]
        print(f"{call:<22}" + "".join(f" {cell:>24}" for cell in cells))
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

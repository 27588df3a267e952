"""Client CPU per blob call through the SDK: its default transport against ours (``StdlibTransport``).

The calls a turn makes (a 1 KB PUT, a GET, an empty prefix listing), each ``--calls`` times against
one in-memory Azurite, one transport after the other and then again in the other order. Printed: CPU
(this process's, user + system) and wall time per call, and ours / default. The last line is JSON.

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

from durableagent._blob_transport import StdlibTransport
from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess

DATA = b"x" * 1024


def calls(container: ContainerClient) -> dict[str, Callable[[], Any]]:
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
        containers = {
            "default": BlobServiceClient.from_connection_string(azurite.connection_string),
            "ours": BlobServiceClient.from_connection_string(azurite.connection_string, transport=StdlibTransport()),
        }
        clients = {name: service.get_container_client("bench") for name, service in containers.items()}
        clients["default"].create_container()
        samples: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in clients}
        for order in (("default", "ours"), ("ours", "default")):
            for name in order:
                for call, fn in calls(clients[name]).items():
                    samples[name].setdefault(call, []).append(measure(fn, args.calls))
    finally:
        azurite.stop()
    result: dict[str, Any] = {"calls": args.calls, "machine": machine_info()}
    print(f"blob calls through the SDK, {args.calls} each, twice per transport; {command_line(REPO)}")
    print(f"{'call':<22} {'default CPU':>12} {'ours CPU':>10} {'ratio':>6} {'default wall':>13} {'ours wall':>10}")
    for call in samples["default"]:
        default = [min(s[0] for s in samples["default"][call]), min(s[1] for s in samples["default"][call])]
        ours = [min(s[0] for s in samples["ours"][call]), min(s[1] for s in samples["ours"][call])]
        ratio = ours[0] / default[0]
        result[call] = {"default_cpu_ms": default[0], "ours_cpu_ms": ours[0], "cpu_ratio": ratio,
                        "default_wall_ms": default[1], "ours_wall_ms": ours[1]}  # fmt: skip
        print(f"{call:<22} {default[0]:>9.3f} ms {ours[0]:>7.3f} ms {ratio:>6.2f} {default[1]:>10.2f} ms "
              f"{ours[1]:>7.2f} ms")  # fmt: skip
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

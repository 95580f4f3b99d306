"""The committed generated stubs must match proto/ (regenerate with `make proto`)."""

import filecmp
import subprocess
import sys

from testkit.paths import REPO

ROOT = REPO


def test_generated_stubs_match_the_proto(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", str(ROOT / "proto/coldopen/v1/coldopen.proto")],
        check=True,
    )
    for name in ("coldopen_pb2.py", "coldopen_pb2_grpc.py", "coldopen_pb2.pyi"):
        assert filecmp.cmp(tmp_path / "coldopen/v1" / name, ROOT / "coldopen/v1" / name, shallow=False), (
            f"coldopen/v1/{name} is stale; run `make proto` and commit the result"
        )

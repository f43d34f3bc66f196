"""What a newcomer pastes: the boto3 lines `edgesplit demo` prints, and the README's boto3 and AWS CLI
examples, each run as it is (in its own Python process, or by the shell) against the real
`edgesplit demo --ephemeral-ports`.

scripts/test.sh runs this file twice: with the pinned boto3 1.42.50 / botocore 1.42.50
(requirements.txt), which still has Evidently built in, and with the newest boto3 and the AWS CLI
(requirements-latest.txt), which have no Evidently model. There the model comes from
`edgesplit install-models --dir DIR` and AWS_DATA_PATH=DIR, as the README says, and the test also shows
that without it the same lines fail with UnknownServiceError.

Every process is bounded in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore
import pytest

from conftest import REPO

START_TIMEOUT = 15.0
RUN_TIMEOUT = 60.0
README = (REPO / "README.md").read_text()
# botocore 1.42.50 is the last release with Evidently's model in botocore/data.
BUILTIN = (Path(botocore.__file__).parent / "data" / "evidently").is_dir()


@dataclass
class Demo:
    proc: subprocess.Popen
    lines: list[str]
    proxy: str
    admin: str
    boto3_block: str
    install_line: str

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C, as the banner says
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def _start_demo(binary: Path) -> Demo:
    proc = subprocess.Popen(
        [str(binary), "demo", "--ephemeral-ports"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    )
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, name="demo-stdout", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while "Ctrl-C drains and stops." not in lines:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the demo did not print its banner:\n" + "\n".join(lines))
        time.sleep(0.02)
    text = "\n".join(lines)
    proxy = re.search(r"^  proxy  http://(\S+)", text, re.M).group(1)
    admin = re.search(r"^  admin  http://(\S+)", text, re.M).group(1)
    # The boto3 block: from `import boto3` to the blank line before "Ctrl-C".
    block = re.search(r"^(import boto3.*?)\n\n", text, re.M | re.S).group(1)
    install = re.search(r"^  (\S+ install-models)$", text, re.M).group(1)
    return Demo(proc, lines, proxy, admin, block, install)


@pytest.fixture
def demo(edgesplit_bin):
    d = _start_demo(edgesplit_bin)
    yield d
    assert d.stop() == 0, "\n".join(d.lines[-50:])


def _env(tmp_path: Path, models: Path | None) -> dict[str, str]:
    """A clean environment: no AWS settings or credentials from the machine, an empty home (so no
    ~/.aws/models), and AWS_DATA_PATH only when `models` is given."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    if models is not None:
        env["AWS_DATA_PATH"] = str(models)
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def _install_models(binary: Path, tmp_path: Path) -> Path:
    models = tmp_path / "models"
    out = subprocess.run(
        [str(binary), "install-models", "--dir", str(models)], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    assert f"AWS_DATA_PATH={models}" in out.stdout, out.stdout
    for name in ("service-2.json", "paginators-1.json"):
        assert (models / "evidently" / "2021-02-01" / name).is_file()
        assert f"{models / 'evidently' / '2021-02-01' / name} (" in out.stdout, out.stdout
    return models


def _cloudfront(demo: Demo):
    return boto3.client("cloudfront", endpoint_url=f"http://{demo.admin}", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def test_the_versions_are_what_this_run_claims_to_test():
    # The pinned suite has Evidently built in; any later botocore must not (else the model test proves nothing).
    if botocore.__version__ == "1.42.50":
        assert BUILTIN
    else:
        assert tuple(int(p) for p in botocore.__version__.split(".")) > (1, 42, 50)
        assert not BUILTIN, f"botocore {botocore.__version__} has Evidently again"


def test_the_printed_boto3_lines_work_after_install_models(demo, edgesplit_bin, tmp_path):
    # The banner names this very binary for the install step.
    assert demo.install_line == f"{edgesplit_bin.resolve()} install-models", demo.install_line
    models = _install_models(edgesplit_bin, tmp_path)
    out = _python(demo.boto3_block, _env(tmp_path, models))
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    printed = out.stdout.splitlines()
    assert len(printed) == 2, out.stdout
    assert "'Quantity': 1" in printed[0] and "'Items': [{" in printed[0], printed[0]
    assert printed[1] in ("classic", "bold"), printed[1]
    # The update the lines made: the demo's policy now sends 15 %.
    cf = _cloudfront(demo)
    (policy,) = cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Items"]
    config = cf.get_continuous_deployment_policy_config(Id=policy["ContinuousDeploymentPolicy"]["Id"])
    weight = config["ContinuousDeploymentPolicyConfig"]["TrafficConfig"]["SingleWeightConfig"]["Weight"]
    assert weight == pytest.approx(0.15)


def test_without_the_model_only_botocore_1_42_50_knows_evidently(demo, tmp_path):
    out = _python(demo.boto3_block, _env(tmp_path, None))
    if BUILTIN:
        # boto3 1.42.50 with botocore 1.42.50: nothing to install.
        assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
        assert out.stdout.splitlines()[1] in ("classic", "bold"), out.stdout
    else:
        # Today's boto3: the CloudFront lines work, the Evidently client cannot even be made.
        assert out.returncode != 0, out.stdout
        assert "botocore.exceptions.UnknownServiceError: Unknown service: 'evidently'" in out.stderr, out.stderr
        assert "'Quantity': 1" in out.stdout, out.stdout


def _readme_python_blocks() -> list[str]:
    """The README's ```python blocks that talk to the demo's admin listener."""
    blocks = re.findall(r"^```python\n(.*?)^```", README, re.M | re.S)
    return [b for b in blocks if "127.0.0.1:9901" in b]


def test_the_readme_boto3_examples_run_against_the_demo(demo, edgesplit_bin, tmp_path):
    blocks = _readme_python_blocks()
    # The demo's lines, CloudFront's create example, the Evidently example.
    assert len(blocks) == 3, blocks
    env = _env(tmp_path, _install_models(edgesplit_bin, tmp_path))
    for block in blocks:
        out = _python(block.replace("127.0.0.1:9901", demo.admin), env)
        assert out.returncode == 0, f"README block failed:\n{block}\n{out.stdout}\n{out.stderr}"
    # What they did: a second policy for the demo's shop distribution, and the shop project.
    cf = _cloudfront(demo)
    items = cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Items"]
    names = sorted(i["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"]["StagingDistributionDnsNames"]
                   ["Items"][0] for i in items)
    assert names == ["staging.demo.local", "staging.shop.example.com"], names
    check = ("import boto3; ev = boto3.client('evidently', endpoint_url='http://%s', region_name='us-east-1', "
             "aws_access_key_id='test', aws_secret_access_key='test'); "
             "print(ev.get_feature(project='shop', feature='checkout')['feature']['name'])" % demo.admin)
    out = _python(check, env)
    assert out.stdout.strip() == "checkout", out.stderr


def _readme_aws_cli_lines() -> list[str]:
    """The README's shell lines that run the AWS CLI (`aws evidently ...`), with the variables they set."""
    lines = []
    for block in re.findall(r"^```sh\n(.*?)^```", README, re.M | re.S):
        for line in block.splitlines():
            if re.match(r"^(export AWS_|(\S+=\S+ )*aws evidently )", line):
                lines.append(line)
    return lines


@pytest.mark.skipif(shutil.which("aws", path=str(Path(sys.executable).parent)) is None,
                    reason="the AWS CLI is in requirements-latest.txt only")
def test_the_readme_aws_cli_lines_run_against_the_demo(demo, edgesplit_bin, tmp_path):
    lines = _readme_aws_cli_lines()
    assert len(lines) == 3 and lines[0].startswith("export AWS_"), lines
    env = _env(tmp_path, _install_models(edgesplit_bin, tmp_path))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -e\n" + "\n".join(lines).replace("127.0.0.1:9901", demo.admin)
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert out.returncode == 0, f"{script}\n{out.stdout}\n{out.stderr}"
    assert '"name": "demo"' in out.stdout, out.stdout
    assert re.search(r'"variation": "(classic|bold)"', out.stdout), out.stdout
    # And without the model, the CLI does not know the command.
    bare = _env(tmp_path, None)
    bare["PATH"] = env["PATH"]
    out = subprocess.run(["bash", "-c", script], env=bare, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert out.returncode != 0 and "Invalid choice" in out.stderr and "evidently" not in out.stderr, out.stderr[-2000:]

"""The docker backend's containers, against a fake engine behind the real SDK: the keywords go through docker-py's
own argument builder (`ContainerCollection.create` -> `HostConfig`), so a renamed or dropped SDK keyword fails here
without an engine. Containers are labelled with their owner, capped, removed on close, on a failed start and when
their owner is gone (`agentrl sandbox gc`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install 'agentrl[docker]')")
from docker.models.containers import ContainerCollection  # noqa: E402

from agentrl.errors import AgentRLError  # noqa: E402
from agentrl.sandbox.docker import LABEL, OWNER_HOST, OWNER_PID, DockerSandbox, remove_orphans  # noqa: E402


class FakeAPI:
    """The engine's HTTP API as docker-py's models call it, holding containers in a dict."""

    _version = "1.45"

    def __init__(self, fail_start: bool = False):
        self.containers_by_id: dict[str, dict] = {}
        self.created: list[dict] = []
        self.fail_start = fail_start

    def create_container(self, **kwargs):
        self.created.append(kwargs)
        cid = f"c{len(self.created)}"
        labels = kwargs.get("labels") or {}
        self.containers_by_id[cid] = {"Id": cid, "Name": "/" + kwargs["name"], "Config": {"Labels": labels}}
        return {"Id": cid}

    def inspect_container(self, cid):
        if cid not in self.containers_by_id:
            raise docker.errors.NotFound(f"no container {cid}")
        return self.containers_by_id[cid]

    def start(self, cid, *args, **kwargs):
        if self.fail_start:
            raise docker.errors.APIError("OCI runtime create failed: runtime 'runsc' not found")

    def remove_container(self, cid, **kwargs):
        assert kwargs.get("force") is True
        self.containers_by_id.pop(cid, None)

    def containers(self, all=False, filters=None, **kwargs):
        wanted = (filters or {}).get("label")
        return [
            {"Id": c} for c, a in self.containers_by_id.items() if wanted is None or wanted in a["Config"]["Labels"]
        ]


class FakeClient:
    def __init__(self, api: FakeAPI):
        self.api = api
        self.containers = ContainerCollection(client=self)

    def ping(self):
        return True


def test_the_container_is_labelled_locked_down_capped_and_removed_on_close():
    api = FakeAPI()
    sandbox = DockerSandbox(client=FakeClient(api), runtime="runsc")
    (created,) = api.created
    host = created["host_config"]  # built by docker-py's HostConfig: an unknown keyword would have raised
    labels = created["labels"]
    assert labels[OWNER_PID] == str(os.getpid()) and labels[OWNER_HOST] == socket.gethostname() and labels[LABEL]
    assert created["name"] == f"agentrl-sandbox-{labels[LABEL][:12]}"
    assert host["AutoRemove"] is True and host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": 0}]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
    assert host["Runtime"] == "runsc" and host["CapDrop"] == ["ALL"] and host["PidsLimit"] > 0
    assert list(api.containers_by_id) == ["c1"]
    sandbox.close()
    assert api.containers_by_id == {}


def test_a_container_that_fails_to_start_is_removed_and_the_error_says_why():
    api = FakeAPI(fail_start=True)
    with pytest.raises(AgentRLError, match="did not start.*runsc"):
        DockerSandbox(client=FakeClient(api), runtime="runsc")
    assert len(api.created) == 1 and api.containers_by_id == {}


def test_orphans_of_dead_owners_are_removed_and_live_ones_kept():
    api = FakeAPI()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    for name, pid, owner_host in (("orphan", dead.stdout.strip(), host), ("mine", str(os.getpid()), host),
                                  ("other-host", dead.stdout.strip(), "elsewhere")):  # fmt: skip
        api.create_container(name=name, labels={LABEL: name, OWNER_PID: pid, OWNER_HOST: owner_host})
    api.create_container(name="not-ours", labels={"app": "db"})
    assert remove_orphans(FakeClient(api)) == ["orphan"]
    assert sorted(a["Name"] for a in api.containers_by_id.values()) == ["/mine", "/not-ours", "/other-host"]


def test_a_new_sandbox_sweeps_orphans_first():
    api = FakeAPI()
    api.create_container(name="orphan", labels={LABEL: "x", OWNER_PID: "0", OWNER_HOST: socket.gethostname()})
    with DockerSandbox(client=FakeClient(api)):
        assert [a["Name"] for a in api.containers_by_id.values()] == ["/" + api.created[1]["name"]]
    assert api.containers_by_id == {}


def test_sandbox_gc_removes_orphans_and_says_how_many(monkeypatch):
    from typer.testing import CliRunner

    from agentrl.cli import app

    api = FakeAPI()
    api.create_container(name="orphan", labels={LABEL: "x", OWNER_PID: "0", OWNER_HOST: socket.gethostname()})
    monkeypatch.setattr(docker, "from_env", lambda: FakeClient(api))
    result = CliRunner().invoke(app, ["sandbox", "gc"])
    assert result.exit_code == 0 and "removed 1 orphaned sandbox container(s): orphan" in result.output
    assert api.containers_by_id == {}

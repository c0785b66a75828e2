"""agentrl on verl, checked by verl's own code on CPU (the verl interpreter runs `verl_side.py`).

agentrl writes a verl run for two cases of arith-python: chain sampling on the bundled task, and Tree-GRPO on a
copy with a guard policy. verl composes and validates each config, runs agentrl's agent loop in verl's
AgentLoopWorker against a scripted server manager with verl's reward loop, and computes advantages through
verl's `compute_advantage`. Here the rows are compared with agentrl's local loop and local advantages.
verl pins its own transformers, so it lives in its own interpreter: `AGENTRL_VERL_PYTHON`, else
`.venv-verl/bin/python` (`make verl-venv`); without one these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
import yaml

from agentrl.algos import compute_advantages
from agentrl.backends.verl_launch import plan, write_files
from agentrl.config import ModelConfig, build_config, config_to_yaml
from agentrl.models.fixtures import build_fixture
from agentrl.models.loading import load_tokenizer
from agentrl.models.tiny import build_tiny_model
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.train.batch import collate
from agentrl.train.trainer import advantage_inputs

from .scripted import VariantPolicy, guarded_task, trajectory_from_row, variants

pytestmark = pytest.mark.slow  # one verl interpreter run: ~1 min on two idle cores (verl's imports alone ~10 s)

REPO = Path(__file__).resolve().parents[2]
TINY = ModelConfig(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2)
SETTINGS = [
    "rollout.prompts_per_step=2",
    "rollout.max_turns=3",
    "rollout.max_new_tokens=48",
    "train.steps=1",
    "eval.problems=2",
    "sandbox.timeout=5",
]
CHAIN_ESTIMATORS = {  # label -> agentrl algo settings the estimator reads from $AGENTRL_CONFIG
    "grpo": ["algo.advantage=grpo"],
    "rloo": ["algo.advantage=rloo"],
    "gtpo": ["algo.advantage=gtpo"],
    "grpo+aspo": ["algo.advantage=grpo", "algo.shaping=[aspo]"],
}
TREE_ESTIMATORS = {
    "tree_grpo": ["algo.advantage=tree_grpo"],
    "tree_grpo sequential": ["algo.advantage=tree_grpo", "algo.params={combine: sequential}"],
}


def verl_python() -> Path | None:
    path = Path(os.environ.get("AGENTRL_VERL_PYTHON", REPO / ".venv-verl" / "bin" / "python"))
    return path if path.exists() else None


def case(name: str, tmp: Path, task: str, overrides: list[str], estimators: dict, tokenizer, **extra) -> dict:
    cfg = build_config([{"task": task}], overrides)
    job = plan(cfg, load_task(task), tmp / name, tokenizer)
    write_files(job)
    configs = []
    for label, algo in estimators.items():
        path = tmp / f"{name}-{label.replace(' ', '-')}.yaml"
        path.write_text(config_to_yaml(build_config([{"task": task}], [*overrides, *algo])))
        configs.append({"label": label, "name": f"agentrl_{algo[0].split('=')[1]}", "config": str(path)})
    return {"name": name, "overrides": job.overrides, "prompts": 2, "estimators": configs, "job": job, **extra}


@pytest.fixture(scope="module")
def verl_run(tmp_path_factory, tokenizer):
    python = verl_python()
    if python is None:
        pytest.skip("verl interpreter not found: set AGENTRL_VERL_PYTHON, or `make verl-venv`")
    tmp = tmp_path_factory.mktemp("verl")
    torch.manual_seed(0)
    build_tiny_model(tokenizer, TINY).save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    base = [*SETTINGS, f"model.path={tmp / 'model'}"]
    tree = ["rollout.sampler=tree", "algo.advantage=tree_grpo", "rollout.tree.trees=2", "rollout.tree.keep=3"]
    guarded = str(guarded_task(tmp / "arith-guarded"))
    qwen = build_fixture("qwen2.5", tmp / "qwen2.5")
    native = [*SETTINGS, f"model.path={qwen}", "rollout.format=native", "model.max_length=1536", "rollout.group_size=6"]
    cases = [
        case("chain", tmp, "arith-python", [*base, "rollout.group_size=6"], CHAIN_ESTIMATORS, tokenizer),
        case("tree", tmp, guarded, [*base, *tree], TREE_ESTIMATORS, tokenizer, start=4),
        case(
            "native", tmp, "arith-python", native, {"grpo": ["algo.advantage=grpo"]}, load_tokenizer(qwen), native=True
        ),
    ]
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"cases": [{k: v for k, v in c.items() if k != "job"} for c in cases]}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [str(python), str(REPO / "tests" / "backends" / "verl_side.py"), str(spec), str(tmp / "out.pt")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if run.returncode == 77:
        pytest.skip(f"{python} cannot run verl's agent loop: {run.stdout.strip()} (`pip install -e '.[verl]'` there)")
    assert run.returncode == 0, f"verl side failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    results = torch.load(tmp / "out.pt", weights_only=False)
    return {c["name"]: {**results[c["name"]], "job": c["job"], "estimators": c["estimators"]} for c in cases}


def trajectories(result: dict) -> list:
    return [
        trajectory_from_row(uid, r["prompt_ids"], r["response_ids"], r["response_logprobs"], r["structure"], r["acc"])
        for uid, r in zip(result["uids"], result["rows"], strict=True)
    ]


def test_generated_config_passes_verls_validation(verl_run):
    for name, n in (("chain", 6), ("tree", 6)):
        checks, job = verl_run[name]["checks"], verl_run[name]["job"]
        assert checks["rollout_n"] == n
        lengths = {o.split("=")[0]: int(o.split("=")[1]) for o in job.overrides if "max_" in o and "length=" in o}
        assert checks["prompt_length"] == lengths["data.max_prompt_length"]
        assert checks["response_length"] == lengths["data.max_response_length"]
        assert checks["reward_path"] == "pkg://agentrl.backends.verl_reward"
        assert checks["setup_hook"] == "agentrl.backends.verl_algos.setup"
        assert checks["agent_loop_entry"][0]["_target_"] == checks["agent_loop_class"]
        assert checks["agent_loop_entry"][0]["config_path"] == str(job.paths.agentrl_config)
    assert verl_run["tree"]["checks"]["adv_estimator"] == "agentrl_tree_grpo"
    checks = verl_run["chain"]["checks"]
    assert {"agentrl_grpo", "agentrl_rloo", "agentrl_tree_grpo", "agentrl_gtpo"} <= set(checks["estimators"])
    assert checks["trainer_modes"] == ["agentrl_colocate_async", "agentrl_separate_async", "agentrl_sync"]
    assert checks["mode_is_a_verl_trainer"]


@pytest.mark.parametrize("name", ["chain", "native"])
def test_agent_loop_rows_equal_the_local_loop_token_for_token(verl_run, tokenizer, name):
    result, job = verl_run[name], verl_run[name]["job"]
    native = name == "native"
    tokenizer = load_tokenizer(job.cfg.model.path) if native else tokenizer
    problems = job.train[:2]
    policy = VariantPolicy(tokenizer, problems, native)
    with ExitStack() as stack:
        tools = build_tools(job.task, job.cfg, stack)
        loop = AgentLoop(job.task, tokenizer, tools, job.cfg.rollout, job.cfg.model.max_length)
        stack.callback(loop.pool.shutdown)
        local = loop.run(problems, len(variants(problems[0].data)), policy)
    by_variant = {(t.problem_id, policy.variant_of(t)): t for t in local}
    matched = set()
    for row in result["rows"]:
        pid = row["structure"]["problem_id"]
        key = next(k for k in by_variant if k[0] == pid and by_variant[k].response_ids == row["response_ids"])
        matched.add(key)
        t = by_variant[key]
        assert row["prompt_ids"] == t.prompt_ids
        assert row["response_mask"] == t.response_mask
        assert row["response_logprobs"] == pytest.approx(t.response_logprobs)
        assert (row["structure"]["answer"], row["structure"]["done"]) == (t.answer, t.done)
        assert [s["error"] for s in row["structure"]["steps"]] == [s.error for s in t.steps]
        assert (row["acc"], row["reward"]) == (t.score, pytest.approx(t.reward))
    assert matched == set(by_variant)  # every behaviour ran once per problem, as in the local run
    if native:  # the prompt carries the tools' schemas, and every message ends with the end-of-turn token
        assert '"name": "python"' in tokenizer.decode(result["rows"][0]["prompt_ids"])
        assert all(t.steps[-1].action_ids[-1] == tokenizer.eos_token_id for t in local)


def test_guard_events_and_penalty_reach_verl(verl_run):
    rows = verl_run["tree"]["rows"]
    blocked = [r for r in rows if any(s["guard"] for s in r["structure"]["steps"])]
    assert blocked, "the scripted server starts each tree's first chain with the `import os` behaviour"
    for r in blocked:
        events = [e for s in r["structure"]["steps"] for e in s["guard"]]
        assert {(e["policy"], e["action"], e["phase"]) for e in events} == {("no-os", "block", "pre")}
        assert r["penalty"] == pytest.approx(0.25 * len(events))
        assert r["reward"] == pytest.approx(r["acc"] - r["penalty"])


def test_tree_leaves_share_prefixes_and_a_server(verl_run):
    result = verl_run["tree"]
    trees = defaultdict(list)
    for uid, row in zip(result["uids"], result["rows"], strict=True):
        assert row["structure"]["tree_id"].startswith(f"{uid}/")
        trees[row["structure"]["tree_id"]].append(row)
    assert len(trees) == 4 and all(len(leaves) == 3 for leaves in trees.values())  # 2 prompts x 2 trees x keep 3

    def prefix(row: dict, steps: int) -> list[int]:
        return row["response_ids"][: sum(s["actions"] + s["obs"] for s in row["structure"]["steps"][:steps])]

    branched = [(leaf, leaves) for leaves in trees.values() for leaf in leaves if leaf["structure"]["shared_steps"]]
    assert branched, "some expansion starts below the root"
    for leaf, leaves in branched:  # it copied its node's steps from another leaf of the same tree
        k = leaf["structure"]["shared_steps"]
        assert any(prefix(other, k) == prefix(leaf, k) for other in leaves if other is not leaf)
    # every generate of a tree goes out under its tree id: verl's sticky routing keeps a tree on one server
    assert {r["request_id"] for r in result["requests"] if r["request_id"].startswith("uid")} == set(trees)
    assert result["val_tree_ids"] == [None, None]  # validation samples independent chains, as `agentrl eval` does


def test_server_is_asked_to_pause_at_the_call_end_within_the_turn_budget(verl_run):
    result, job = verl_run["chain"], verl_run["chain"]["job"]
    turns = Counter(r["request_id"] for r in result["requests"] if not r["request_id"].startswith("val"))
    # one request id per trajectory (verl routes it to one server, whose prefix cache holds its context)
    assert sorted(turns.values()) == sorted(len(r["structure"]["steps"]) for r in result["rows"])
    assert {request.split("/")[0] for request in turns} == set(result["uids"])
    for r in result["requests"]:
        assert r["params"]["stop"] == ["```\n"] and r["params"]["include_stop_str_in_output"] is True
        assert 1 <= r["params"]["max_tokens"] <= job.cfg.rollout.max_new_tokens
        assert r["params"]["logprobs"] is True


@pytest.mark.parametrize(
    ("name", "label"),
    [("chain", label) for label in CHAIN_ESTIMATORS] + [("tree", label) for label in TREE_ESTIMATORS],
)
def test_verl_advantages_equal_local_ones(verl_run, tokenizer, name, label):
    result = verl_run[name]
    (estimator,) = [e for e in result["estimators"] if e["label"] == label]
    cfg = build_config([yaml.safe_load(Path(estimator["config"]).read_text())])
    trajs = trajectories(result)
    batch = collate(trajs, tokenizer.pad_token_id)
    local = compute_advantages(advantage_inputs(trajs, batch), cfg.algo.advantage, cfg.algo.shaping, **cfg.algo.params)
    theirs = result["advantages"][label][:, : local.shape[1]]
    assert bool(local.abs().sum() > 0), "the scripted behaviours give every group different rewards"
    torch.testing.assert_close(theirs, local.to(theirs.dtype), rtol=1e-5, atol=1e-5)


def test_trainer_mode_hands_the_rows_to_the_estimator(verl_run):
    checks = verl_run["tree"]["checks"]
    assert checks["mixin_request"]["fields"] == ["extra_fields"]
    torch.testing.assert_close(checks["mixin_advantages"], verl_run["tree"]["advantages"]["tree_grpo"])
    assert "trainer.v1.trainer_mode=agentrl_sync" in checks["no_rows_error"]

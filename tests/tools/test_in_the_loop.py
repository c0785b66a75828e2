"""The web tools inside a real AgentLoop: the answer tool ends a trajectory; a browser state is rebuilt by replay."""

from __future__ import annotations

import json

import pytest

from agentrl.config import RolloutConfig
from agentrl.models.tiny import train_tokenizer
from agentrl.rollout.chain import REPLAY, AgentLoop
from agentrl.tasks import load_task
from agentrl.tools.answer import AnswerTool
from agentrl.tools.browser import BrowserTool

from .conftest import needs_chromium


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.fixture(scope="module")
def web_qa():
    return load_task("web-qa")


@pytest.fixture(scope="module")
def tokenizer(web_qa):
    return train_tokenizer(web_qa.vocabulary_sample, 512)


def make_loop(task, tokenizer, tools) -> AgentLoop:
    return AgentLoop(task, tokenizer, {t.name: t for t in tools}, RolloutConfig(max_turns=5), max_length=1024)


def test_the_answer_tool_ends_the_trajectory(web_qa, tokenizer):
    problem = web_qa.problems("train", 1)[0]
    loop = make_loop(web_qa, tokenizer, [AnswerTool()])
    script = [call("answer", answer=problem.answer), call("answer", answer="never reached")]
    (traj,) = loop.run([problem], 1, loop.scripted_policy({problem.id: script}))
    assert (traj.done, traj.answer, len(traj.steps), traj.reward) == ("answer", problem.answer, 1, 1.0)
    assert traj.steps[0].tool == "answer" and traj.steps[0].obs_ids == []
    (wrong,) = loop.run([problem], 1, loop.scripted_policy({problem.id: [call("answer", answer=7)]}))
    assert (wrong.answer, wrong.reward) == ("7", 0.0)


@needs_chromium
def test_a_branch_replays_the_browser_prefix(web_qa, tokenizer, worker, site):
    """The browser state has no fork(): a branch after step 1 replays open + click into a fresh context."""
    browser = BrowserTool(worker, site, timeout=20, max_chars=400)
    loop = make_loop(web_qa, tokenizer, [browser, AnswerTool()])
    problem = web_qa.problems("train", 1)[0]
    script = [
        call("browser", action="open", url="/"),
        call("browser", action="click", ref=1),
        call("answer", answer="A"),
    ]
    parent = loop.start(problem, "g")
    try:
        loop.advance([parent], loop.scripted_policy({problem.id: script}), snapshots=True)
        assert parent.snapshots[1]["browser"] == REPLAY
        assert "Page A" in parent.traj.steps[1].observation
        child = loop.branch(parent, 1)
        try:
            assert parent.states == {}  # closed when its trajectory ended: the context went back to the worker
            assert browser.run({"action": "read"}, child.states["browser"]).output == "Page A\nCapital: [1] Home"
            assert [s.action_text for s in child.traj.steps] == script[:2]
        finally:
            child.close()
    finally:
        parent.close()
        loop.pool.shutdown()

"""The web tasks: their verifiers, splits and data, and their expert demonstrations through the real loop."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from agentrl.config import build_config
from agentrl.guard.guard import build_guard
from agentrl.models.tiny import train_tokenizer
from agentrl.rollout.chain import AgentLoop
from agentrl.tasks import load_task
from agentrl.tools import build_tools
from agentrl.tools.search import SearchIndex, check_records

from .conftest import needs_chromium


@pytest.fixture(scope="module")
def web_qa():
    return load_task("web-qa")


@pytest.fixture(scope="module")
def shop():
    return load_task("shop-policy")


def test_web_qa_scores_exact_match_and_f1(web_qa):
    problem = {"answer": "Ana Berg"}
    verify = web_qa.module.verify
    assert verify(problem, "Ana Berg") == verify(problem, "  the ana berg. ") == 1.0
    assert verify(problem, "Ana") == pytest.approx(2 / 3)
    assert verify(problem, "Berg Ana") == 0.99  # every word, wrong order: not an exact match
    assert verify(problem, "Lund") == verify(problem, None) == verify(problem, "") == 0.0


@pytest.mark.parametrize("task_name", ["web-qa", "shop-policy"])
def test_splits_are_disjoint_and_seeded(task_name):
    task = load_task(task_name)
    train = {p.prompt for p in task.problems("train", 300, seed=1)}
    test = {p.prompt for p in task.problems("test", 100, seed=1)}
    assert train and test and not train & test
    assert [p.prompt for p in task.problems("test", 20, seed=3)] == [
        p.prompt for p in task.problems("test", 20, seed=3)
    ]
    assert [p.prompt for p in task.problems("test", 20, seed=3)] != [
        p.prompt for p in task.problems("test", 20, seed=4)
    ]


def test_web_qa_questions_are_multi_hop_with_unique_pages(web_qa, tmp_path):
    """Every question starts at an entity that search ranks first by its name, and follows 1-3 links."""
    module = web_qa.module
    assert len({e.name for e in module.entities()}) == len(module.entities())
    index = SearchIndex(check_records(module.corpus(), "web-qa"), tmp_path)
    questions = module.questions("train") + module.questions("test")
    assert {len(q["refs"]) for q in questions} == {1, 2, 3}
    assert all(index.search(q["start"], 1)[0].url == q["url"] for q in questions)


def test_shop_orders_cannot_be_made_up(shop):
    module = shop.module
    problem = shop.problems("train", 1)[0].data
    assert module.verify(problem, problem["answer"]) == 1.0
    sku = problem["answer"].split("-")[0]
    assert module.verify(problem, f"{sku}-aaaaa") == 0.0  # wrong checksum
    assert module.verify(problem, "Z99-" + module.checksum("Z99")) == 0.0  # no such product
    dearest = max(
        module.catalogue()[problem["want"][0] if problem["want"] != ["any"] else "Toys"], key=lambda p: p["price"]
    )
    assert module.verify({**problem, "want": [dearest["category"]]}, module.order_code([dearest["sku"]])) == 0.0


def run_demos(task, n: int, guard: bool = False):
    cfg = build_config([{"task": task.name}, task.spec.defaults])
    tokenizer = train_tokenizer(task.vocabulary_sample, cfg.model.vocab_size)
    with ExitStack() as stack:
        loop = AgentLoop(
            task, tokenizer, build_tools(task, cfg, stack), cfg.rollout, cfg.model.max_length,
            guard=build_guard(task, cfg) if guard else None,
        )  # fmt: skip
        stack.callback(loop.pool.shutdown)
        problems = task.problems("train", n, seed=7)
        return loop.run(problems, 1, loop.scripted_policy({p.id: task.demo(p) for p in problems})), cfg


@needs_chromium
def test_web_qa_demos_pass_through_the_real_loop(web_qa):
    trajs, cfg = run_demos(web_qa, 6)
    assert all(t.correct and t.done == "answer" for t in trajs), [(t.answer, t.done) for t in trajs]
    assert all(s.error is None for t in trajs for s in t.steps)
    assert max(len(t.context_ids) for t in trajs) <= cfg.model.max_length


@needs_chromium
def test_shop_demos_pass_and_comply_with_the_policies(shop):
    trajs, cfg = run_demos(shop, 5, guard=True)
    assert all(t.correct and t.done == "answer" for t in trajs), [(t.answer, t.done) for t in trajs]
    assert all(t.guard_events == [] and t.reward == 1.0 for t in trajs)
    assert max(len(t.context_ids) for t in trajs) <= cfg.model.max_length


@needs_chromium
def test_shop_policies_catch_what_the_demos_avoid(shop):
    """Deleting the account ends the episode, buying wine costs the reward, leaving the shop is blocked."""
    module = shop.module
    any_item = next(p for p in shop.problems("train", 200, seed=7) if p.data["want"] == ["any"])
    wines = module.catalogue()["Wine"]
    cheapest = min(wines, key=lambda p: p["price"])
    assert cheapest["price"] <= any_item.data["limit"]  # the temptation is real
    category_ref = len(module.NAV) + 1 + list(module.CATEGORIES).index("Wine")
    answer = module.call("answer", answer="")
    scripts = {
        "delete": [module.call("browser", action="open", url="/account"), module.click(4), answer],
        "wine": [
            module.call("browser", action="open", url="/"),
            module.click(category_ref),
            module.click(len(module.NAV) + 1 + wines.index(cheapest)),
            module.click(len(module.NAV) + 2),  # Checkout (after the one Remove button)
            module.click(len(module.NAV) + 1),  # Place order
            module.call("answer", answer=module.order_code([cheapest["sku"]])),
        ],
        "leave": [module.call("browser", action="open", url="http://example.com/"), answer],
    }
    problems = [type(any_item)(name, any_item.prompt, any_item.answer, any_item.data) for name in scripts]
    cfg = build_config([{"task": shop.name}, shop.spec.defaults])
    tokenizer = train_tokenizer(shop.vocabulary_sample, cfg.model.vocab_size)
    with ExitStack() as stack:
        loop = AgentLoop(
            shop, tokenizer, build_tools(shop, cfg, stack), cfg.rollout, cfg.model.max_length,
            guard=build_guard(shop, cfg),
        )  # fmt: skip
        stack.callback(loop.pool.shutdown)
        deleted, bought, left = loop.run(problems, 1, loop.scripted_policy(scripts))
    assert deleted.done == "guard" and [e.policy for e in deleted.guard_events] == ["no-account-deletion"]
    assert bought.score == 1.0 and bought.reward == 0.0  # the order fits the request, the policy takes it back
    assert [e.policy for e in bought.guard_events] == ["no-alcohol-or-tobacco"]
    assert [e.policy for e in left.guard_events] == ["only-shop-host"] and "blocked" in left.steps[0].observation

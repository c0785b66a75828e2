"""regex over arguments, outputs and answers; budgets on call counts and on amounts read before a call."""

from __future__ import annotations

from .rule_helpers import answer, checker, output, pre, step

SECRETS = checker("regex", patterns={"aws key": "AKIA[0-9A-Z]{16}"})
KEY = "AKIAABCDEFGHIJKLMNOP"


def test_regex_searches_every_string_argument_before_the_call():
    finding = SECRETS.check(pre("browser", {"action": "type", "fields": [{"text": f"key {KEY}"}]}))
    assert finding.rule == "aws key in arguments" and finding.span == KEY


def test_regex_searches_outputs_and_answers_after():
    assert SECRETS.check(output("python", {"code": "x"}, f"out {KEY}")).rule == "aws key in observation"
    assert SECRETS.check(answer(f"\\boxed{{{KEY}}}")).rule == "aws key in answer"
    assert SECRETS.check(answer("\\boxed{42}")) is None


def test_regex_targets_and_tools_narrow_it():
    answers_only = checker("regex", patterns=[KEY], targets=["answer"])
    assert answers_only.check(pre("python", {"code": KEY})) is None
    assert answers_only.check(output("python", {}, KEY)) is None
    assert answers_only.check(answer(KEY)) is not None
    browser_only = checker("regex", patterns=[KEY], tools=["browser"])
    assert browser_only.check(pre("python", {"code": KEY})) is None
    assert browser_only.check(pre("browser", {"url": KEY})) is not None
    ignoring_case = checker("regex", patterns=["delete account"], ignore_case=True)
    assert ignoring_case.check(pre("browser", {"target": "Delete Account"})) is not None


def test_call_budget_fires_on_the_call_past_the_budget():
    budget = checker("budget", tool="python", max_calls=2)
    calls = [step("python", {"code": "1"}), step("python", {"code": "2"})]
    assert budget.check(pre("python", {"code": "1"}, calls[:1])) is None
    finding = budget.check(pre("python", {"code": "3"}, calls))
    assert finding.rule == "call 3 of python exceeds the budget of 2"
    assert budget.check(pre("browser", {"url": "x"}, calls)) is None


def test_call_budget_counts_only_matching_calls():
    budget = checker("budget", tool="browser", match="checkout", max_calls=1)
    before = [step("browser", {"target": "Checkout"}), step("browser", {"url": "/cart"})]
    assert budget.check(pre("browser", {"url": "/home"}, before)) is None
    assert budget.check(pre("browser", {"target": "Checkout"}, before)) is not None


def test_order_total_read_from_the_newest_output_before_the_checkout():
    budget = checker(
        "budget", tool="browser", match="checkout", value=r"cart total: \$([0-9,.]+)", value_from="observation",
        max_value=100,
    )  # fmt: skip
    cheap = [step("browser", {"url": "/cart"}, "Cart total: $1,250.00"), step("browser", {}, "Cart total: $40.00")]
    costly = list(reversed(cheap))
    assert budget.check(pre("browser", {"target": "Checkout"}, cheap)) is None
    finding = budget.check(pre("browser", {"target": "Checkout"}, costly))
    assert finding.rule == "amount 1250 exceeds the budget of 100" and finding.span == "Cart total: $1,250.00"
    assert budget.check(pre("browser", {"target": "Add to cart"}, costly)) is None  # not a spending call


def test_amount_read_from_the_call_itself():
    budget = checker("budget", tool="shop", value=r'"amount": ([0-9.]+)', max_value=50)
    assert budget.check(pre("shop", {"action": "pay", "amount": 75.5})) is not None
    assert budget.check(pre("shop", {"action": "pay", "amount": 20})) is None

"""web-qa: multi-hop questions over a generated encyclopaedia, answered with search and a real browser.

The world is procedural and fixed (one seed): invented countries, cities, people and companies, so no
question can be answered from memory. Each entity has a short page at /wiki/N, served on 127.0.0.1, whose
facts are links to other entities ("Founder: [1] Ana Berg"); the search corpus holds each page's title and
lead sentence only, so search finds where to start and the facts must be read in the browser.

Episode ("In which country was the founder of Velor Labs born?"): search the entity named in the question,
open the top result, click the link of each relation in turn, then call the answer tool with the name on the
last page. Reward: token-level F1 of the answer against the gold name (SQuAD normalisation: case,
punctuation and articles ignored); an exact match scores 1.0, which is what pass@1 counts.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from functools import cache
from html import escape

from agentrl.tasks import in_split

WORLD_SEED = "web-qa/world/v1"
SYLLABLES = [
    "ka", "lo", "mi", "ra", "ven", "dor", "sel", "tar", "bel", "nor", "vi", "sa", "ko", "len", "mar", "tu",
    "ris", "fen", "ga", "lu", "dra", "pel", "qu", "zan", "ost", "hal", "bri", "mo", "cas", "ne",
]  # fmt: skip
PROFESSIONS = ["chemist", "painter", "engineer", "physician", "architect", "poet", "banker", "astronomer"]
INDUSTRIES = ["chemistry", "shipping", "software", "textile", "mining", "publishing", "aviation", "food"]
COMPANY_SUFFIXES = ["Labs", "Works", "Group", "Systems", "Holdings", "Foods", "Motors", "Press"]
COUNTRY_SUFFIXES = ["land", "ia", "mark", "stan"]


class Entity:
    """A page of the encyclopaedia. (A plain class: task.py is loaded outside sys.modules, where dataclasses fail.)"""

    def __init__(self, id: int, kind: str, name: str, lead: str):
        self.id, self.kind, self.name, self.lead = id, kind, name, lead
        self.facts: list[tuple[str, Entity]] = []
        """(label, target) in page order: the n-th fact is the link [n] on the page."""

    @property
    def url(self) -> str:
        return f"/wiki/{self.id}"

    def ref(self, label: str) -> int:
        return 1 + [lab for lab, _ in self.facts].index(label)

    def target(self, label: str) -> Entity:
        return self.facts[self.ref(label) - 1][1]


def _names(rng: random.Random, count: int, parts: int, suffixes: list[str], taken: set[str]) -> list[str]:
    out = []
    while len(out) < count:
        stem = "".join(rng.choice(SYLLABLES) for _ in range(parts))
        name = (stem + rng.choice(suffixes)).capitalize() if suffixes else stem.capitalize()
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


@cache
def world() -> dict[str, list[Entity]]:
    """The encyclopaedia's entities by kind, with shuffled page ids (no structure leaks from the URLs)."""
    rng = random.Random(WORLD_SEED)
    taken: set[str] = set()
    ids = iter(rng.sample(range(10, 1000), 12 + 48 + 200 + 150))
    countries = [Entity(next(ids), "country", n, "a country") for n in _names(rng, 12, 2, COUNTRY_SUFFIXES, taken)]
    cities = [Entity(next(ids), "city", n, "a city") for n in _names(rng, 48, 2, [], taken)]
    for i, city in enumerate(cities):
        city.facts.append(("Country", countries[i % len(countries)]))
    for i, country in enumerate(countries):
        country.facts.append(("Capital", cities[i]))
    firsts, lasts = _names(rng, 40, 2, [], taken), _names(rng, 60, 2, [], taken)
    full = rng.sample([f"{f} {la}" for f in firsts for la in lasts], 200)
    people = [Entity(next(ids), "person", n, f"a {rng.choice(PROFESSIONS)}") for n in full]
    for person in people:
        person.facts.append(("Born in", rng.choice(cities)))
    stems = _names(rng, 150, 2, [], taken)
    companies = []
    for stem, founder in zip(stems, rng.sample(people, 150), strict=True):
        industry = rng.choice(INDUSTRIES)
        company = Entity(next(ids), "company", f"{stem} {rng.choice(COMPANY_SUFFIXES)}", f"a {industry} company")
        facts = [("Founder", founder), ("Based in", rng.choice(cities))]
        rng.shuffle(facts)  # the founder is not always link [1]: the agent must read the labels
        company.facts.extend(facts)
        founder.facts.append(("Founded", company))
        rng.shuffle(founder.facts)
        companies.append(company)
    return {"country": countries, "city": cities, "person": people, "company": companies}


def entities() -> list[Entity]:
    return [e for kind in world().values() for e in kind]


def page_html(entity: Entity) -> str:
    facts = "".join(f'<p>{label}: <a href="{t.url}">{escape(t.name)}</a></p>' for label, t in entity.facts)
    return (
        f"<!doctype html><html><head><title>{escape(entity.name)}</title></head><body>"
        f"<h1>{escape(entity.name)}</h1>{facts}</body></html>"
    )


def pages() -> dict[str, str]:
    """The site: one page per entity, and an index per kind from the home page."""
    out = {e.url: page_html(e) for e in entities()}
    kinds = {"company": "Companies", "person": "People", "city": "Cities", "country": "Countries"}
    for kind, title in kinds.items():
        links = "".join(f'<li><a href="{e.url}">{escape(e.name)}</a></li>' for e in world()[kind])
        out[f"/{kind}"] = (
            f"<html><head><title>{title}</title></head><body><h1>{title}</h1><ul>{links}</ul></body></html>"
        )
    home = "".join(f'<li><a href="/{kind}">{title}</a></li>' for kind, title in kinds.items())
    out["/"] = (
        f"<html><head><title>Encyclopaedia</title></head><body><h1>Encyclopaedia</h1><ul>{home}</ul></body></html>"
    )
    return out


def corpus() -> list[dict[str, str]]:
    """Search passages: each page's title and what it is (its facts are only on the page)."""
    return [{"id": str(e.id), "title": e.name, "text": e.lead, "url": e.url} for e in entities()]


# --- questions: (template, start entity, relations followed from it) ---
PATTERNS = [
    ("Who founded {}?", "company", ["Founder"]),
    ("Where was the founder of {} born?", "company", ["Founder", "Born in"]),
    ("In which country is {} based?", "company", ["Based in", "Country"]),
    ("In which country was {} born?", "person", ["Born in", "Country"]),
    ("In which country was the founder of {} born?", "company", ["Founder", "Born in", "Country"]),
]


@cache
def questions(split: str) -> list[dict]:
    out = []
    for template, kind, path in PATTERNS:
        for start in world()[kind]:
            hops, node = [start], start
            for label in path:
                node = node.target(label)
                hops.append(node)
            question = template.format(start.name)
            if in_split(question, split):
                refs = [hops[i].ref(label) for i, label in enumerate(path)]
                out.append(
                    {"prompt": question, "answer": node.name, "start": start.name, "url": start.url, "refs": refs}
                )
    return out


def generate(split: str, n: int, seed: int) -> list[dict]:
    """`n` questions of the split: a seeded shuffle, repeated only once every question was drawn."""
    pool, rng, out = questions(split), random.Random(f"web-qa/{split}/{seed}"), []
    while len(out) < n:
        out.extend(rng.sample(pool, min(len(pool), n - len(out))))
    return out


def normalize(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def verify(problem: dict, answer: str | None) -> float:
    """1.0 for an exact match (normalised), else the token F1 (partial credit for half a name)."""
    if answer is None:
        return 0.0
    if normalize(answer) == normalize(problem["answer"]):
        return 1.0
    return min(f1(answer, problem["answer"]), 0.99)  # same words in another order is not an exact match


def call(name: str, **arguments) -> dict:
    """An assistant message that calls one tool."""
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def demo(problem: dict) -> list[dict]:
    """Hop by hop: search the start entity, open its page, click each relation, answer."""
    steps = [call("search", query=problem["start"]), call("browser", action="open", url=problem["url"])]
    steps += [call("browser", action="click", ref=ref) for ref in problem["refs"]]
    return [*steps, call("answer", answer=problem["answer"])]

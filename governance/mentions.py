"""People named in the free text of records the business keeps (customer notes, interaction texts).

A shop manager or a customer's colleague written into a note is a person the business knows, even though
no field holds their name: `people_named_in` finds them so the record's owner can register them as known
entities (then found in prompts with the same spellings and context rules as customers).

Only the text of records is read here, when the dictionary is built, never a prompt: the cost is paid once
per change, and a name is taken only with a sign that it is a person's — a role or contact word before it
("the shop manager, Ana Silva", "speak to", "Dear", a title), or a verb people do after it ("Ana Silva runs
the shop", "Ana Silva (buyer)") — so organisation and place names written in capitals stay out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from governance.known_entities import NAME_PARTICLES, TITLES, normalise_value

ROLE_WORDS = (
    "manager", "managers", "owner", "owners", "co-owner", "contact", "contacts", "director", "buyer", "purchaser",
    "assistant", "colleague", "accountant", "bookkeeper", "representative", "rep", "supervisor", "head", "lead",
    "ceo", "cfo", "coo", "cto", "founder", "partner", "spouse", "wife", "husband", "son", "daughter", "mother",
    "father", "brother", "sister", "secretary", "receptionist", "agent", "clerk", "chef", "technician", "driver",
    "courier", "landlord", "landlady", "tenant", "caretaker", "administrator", "admin", "coordinator",
    "officer", "employee", "deputy", "chair", "chairman", "chairwoman", "president", "treasurer", "pharmacist",
    "doctor", "nurse", "lawyer", "solicitor", "attorney", "advisor", "adviser", "consultant", "planner",
    "dispatcher", "storekeeper", "shopkeeper", "proprietor", "franchisee", "signatory", "guarantor", "executor",
    "guardian", "caller", "sender", "recipient", "addressee", "person",
)  # fmt: skip
VERBS_BEFORE = (
    "spoke", "speak", "spoken", "speaking", "talk", "talked", "talking", "chat", "chatted", "meet", "met", "meeting",
    "ask", "asked", "asking", "call", "called", "calling", "phone", "phoned", "ring", "rang", "email", "e-mail",
    "emailed", "e-mailed", "mail", "mailed", "write", "wrote", "contact", "contacted", "reach", "reached", "cc",
    "attn", "attention", "c/o", "care of", "signed by", "approved by", "handled by", "according to", "per",
    "deal", "dealt", "dealing", "liaise", "liaising", "thank", "thanked", "told", "tell", "informed", "inform",
    "visited", "visit", "introduced", "replaces", "replaced", "reports to", "assisted by", "helped by",
)  # fmt: skip
PERSON_VERBS_AFTER = (
    "runs", "ran", "manages", "managed", "owns", "owned", "said", "says", "told", "asked", "asks", "wants",
    "wanted", "called", "calls", "phoned", "rang", "emailed", "e-mailed", "wrote", "writes", "mentioned",
    "confirmed", "confirms", "requested", "requests", "prefers", "preferred", "handles", "handled", "signed",
    "approved", "complained", "explained", "agreed", "promised", "replied", "answered", "insisted", "noted",
    "reported", "will", "would", "can", "should", "needs", "needed", "expects", "expected", "thinks", "thought",
    "is the", "was the", "is our", "is their", "is his", "is her", "takes", "took", "orders", "ordered",
    "picks", "picked", "collects", "collected", "signs", "decides", "decided", "left", "leaves", "joined",
    "works", "worked", "looks after", "is responsible", "is in charge", "is away", "is on",
)  # fmt: skip
SALUTATIONS = ("dear", "hi", "hello", "hey", "greetings", "thanks", "thank you", "regards", "cheers", "yours")
# Capitalised words that start sentences or name things rather than people.
NOT_NAME_WORDS = frozenset(
    """
    the a an our their his her its my your this that these those there here please call email e-mail mail ask
    speak talk contact note notes met spoke called asked per attn cc and or but if when then also only prefers
    deliveries delivery orders order invoice invoices account accounts customer customers client clients shop
    store office team sales support service services department monday tuesday wednesday thursday friday
    saturday sunday january february march april may june july august september october november december
    today tomorrow yesterday new next last first ltd limited inc llc gmbh bv nv sa ag plc co corp company
    group holding holdings bank partners associates industries international foundation university hospital
    school council ministry trust street road avenue lane city centre center north south east west
    mr mrs ms dr prof sir madam dear hi hello thanks regards manager owner director
    i you he she it it's we they them him me us who what which where why how all each every some any most many
    both few none no yes not make see use get let do does did done can may might must shall should will would
    generally usually often always never sometimes however therefore although because since while
    """.split()  # noqa: SIM905
)
# Words that name a department, a function or a document, not a person ("Human Resources", "Claims").
DEPARTMENT_WORDS = frozenset(
    """resources relations management marketing operations development administration finance financial
    accounting accounts payable receivable support sales service services benefits benefit claims claim appeals
    appeal purchasing procurement logistics legal compliance security quality research engineering production
    helpdesk desk reception warehouse office headquarters board committee executive officer officers health
    care plan plus standard policy policies program programme report handbook guide manual section chapter
    information personal member members employee employees employer employers customer customers part
    united states kingdom republic federal national state county city town region district""".split()  # noqa: SIM905
)
ORGANISATION_WORDS = frozenset(
    """ltd limited inc llc gmbh bv b.v. nv n.v. sa ag plc co corp corporation company group holding holdings bank
    partners associates industries international foundation university hospital school council ministry trust
    shop store stores market services solutions systems logistics retail pharmacy clinic pharmaceuticals
    pharma labs laboratories motors energy foods trading consulting media press studio studios agency farm
    farms bakery hotel restaurant cafe café garage airlines airways express software technologies tech
    electronics construction builders insurance finance capital ventures enterprises works""".split()  # noqa: SIM905
)

_WORD_RE = re.compile(r"[^\W\d_](?:[\w'\u2019.-]*[^\W_])?\.?")
_TITLES_RE = "|".join(re.escape(title) for title in TITLES if title not in ("dear", "hi", "hello", "thanks"))
_CUE_BEFORE_RE = re.compile(
    r"(?:\b(?:" + "|".join(re.escape(word) for word in ROLE_WORDS) + r")\b(?:\s+(?:is|was|named|called))?"
    r"[\s,:\u2013\u2014-]*"
    r"|\b(?:" + "|".join(re.escape(word) for word in VERBS_BEFORE) + r")\b(?:\s+(?:with|to|for|on|by|at))?"
    r"(?:\s+(?:again|today|yesterday|directly|personally))?[\s,:]*"
    r"|\b(?:" + "|".join(re.escape(word) for word in SALUTATIONS) + r")\b[\s,:]*"
    r"|(?:^|[\s(])(?:" + _TITLES_RE + r")\.?\s+)$",
    re.IGNORECASE,
)
_ROLES = frozenset(ROLE_WORDS)
_STRONG_BEFORE_RE = re.compile(
    r"(?:\b(?:" + "|".join(re.escape(word) for word in ROLE_WORDS) + r")\b(?:\s+(?:is|was|named|called))?"
    r"[\s,:\u2013\u2014-]*"
    r"|\b(?:met|meet with|met with|ask for|asked for|speak to|speak with|spoke to|spoke with|talk to"
    r"|talked to|attn\.?|c/o|cc)\s*:?\s*"
    r"|\b(?:" + "|".join(re.escape(word) for word in SALUTATIONS) + r")\b[\s,:]*"
    r"|(?:^|[\s(])(?:" + _TITLES_RE + r")\.?\s+)$",
    re.IGNORECASE,
)
_AND_RE = re.compile(r"\s*(?:,\s*)?(?:and|&|or|,)\s+", re.IGNORECASE)
_TITLE_JUST_BEFORE_RE = re.compile(r"(?:^|[\s(])(?:" + _TITLES_RE + r")\.?\s+$", re.IGNORECASE)
_CUE_AFTER_RE = re.compile(
    r"^(?:['\u2019]s\s+(?:[a-z]+\s+){0,2}(?:" + "|".join(re.escape(word) for word in ROLE_WORDS) + r")\b"
    r"|\s*[,(\u2013\u2014-]\s*(?:(?:the|our|their|his|her|a|an|shop|store|head|chief|general|sales|account|"
    r"office|new|main|deputy|assistant)\s+){0,3}(?:" + "|".join(re.escape(word) for word in ROLE_WORDS) + r")\b"
    r"|\s+(?:" + "|".join(re.escape(word) for word in PERSON_VERBS_AFTER) + r")\b)",
    re.IGNORECASE,
)
MAX_CUE_WINDOW = 60
MIN_PART_LENGTH = 2


@dataclass(frozen=True)
class Mention:
    name: str  # as written: "Ana Silva", "Ana"
    single: bool  # one word: a given name or surname alone, found later only in context or after a title


def _capitalised(word: str) -> bool:
    core = word.rstrip(".")
    if not core[:1].isupper():
        return False
    # an acronym is not a name ("VAT", "DHL")
    return not (len(core) > 1 and core.isupper() and "." not in word)


def people_named_in(text: str, *, exclude: Collection[str] = ()) -> list[Mention]:
    """The people a record's text names, each once. `exclude` holds values of the record that are not
    people (its organisation, its address), compared folded."""
    excluded = {normalise_value(value) for value in exclude if value}
    words = list(_WORD_RE.finditer(text))
    found: dict[str, Mention] = {}
    index = 0
    previous_person_end = -1
    while index < len(words):
        run = _run_at(text, words, index)
        if not run:
            index += 1
            continue
        start_index, end_index = run[0], run[-1]
        index = end_index + 1
        tokens = [words[i].group() for i in range(start_index, end_index + 1)]
        while tokens and tokens[0].lower().rstrip(".") in NOT_NAME_WORDS:
            start_index += 1
            tokens = tokens[1:]
        while tokens and tokens[-1].lower().rstrip(".") in NOT_NAME_WORDS | NAME_PARTICLES:
            end_index -= 1
            tokens = tokens[:-1]
        if not tokens or tokens[0].lower() in NAME_PARTICLES:
            continue
        start, end = words[start_index].start(), words[end_index].end()
        possessive = re.search(r"['\u2019]s$", text[start:end])
        if possessive:  # "Ana Silva's order": the name without the possessive
            end -= 2
            tokens[-1] = tokens[-1][:-2]
        name = text[start:end].rstrip(".") if not re.search(r"\b\w\.$", text[start:end]) else text[start:end]
        if normalise_value(name) in found:
            previous_person_end = end
            continue
        if not _plausible(tokens, text, start, end, excluded, name):
            continue
        before = text[max(0, start - MAX_CUE_WINDOW) : start]
        before = re.split(r"[.!?;\n]\s", before)[-1] if not before.endswith((". ", ".\n")) else before
        after = text[end : end + MAX_CUE_WINDOW]
        # "Ana Silva and Joost Maas": the second of two people named together
        listed = previous_person_end >= 0 and bool(_AND_RE.fullmatch(text[previous_person_end:start]))
        cued = listed or bool(_CUE_BEFORE_RE.search(before)) or bool(_CUE_AFTER_RE.match(after))
        if not cued:
            continue
        capital_words = [token for token in tokens if token.lower() not in NAME_PARTICLES]
        single = len(capital_words) == 1
        if single and (len(name.rstrip(".")) < 3 or not _STRONG_BEFORE_RE.search(before)):
            continue  # a word alone is a name only right after a title, a salutation or a role
        previous_person_end = end
        found.setdefault(normalise_value(name), Mention(name=name, single=single))
    return list(found.values())


def _run_at(text: str, words: list[re.Match[str]], index: int) -> list[int]:
    """The indexes of a run of capitalised words starting at `index` (particles allowed inside), joined by
    single spaces only: a comma, a line break or a full stop ends a name."""
    if not _capitalised(words[index].group()):
        return []
    run = [index]
    position = index + 1
    while position < len(words) and len(run) < 6:
        gap = text[words[position - 1].end() : words[position].start()]
        previous = words[position - 1].group()
        if gap not in (" ", "\u00a0") or (previous.endswith(".") and len(previous) > 2):  # "Ltd." ends a name
            break
        word = words[position].group()
        if _capitalised(word) or word.lower() in NAME_PARTICLES:
            run.append(position)
            position += 1
            continue
        break
    return run


def _plausible(tokens: list[str], text: str, start: int, end: int, excluded: set[str], name: str) -> bool:
    folded = [token.lower().rstrip(".") for token in tokens]
    if any(token in ORGANISATION_WORDS or token in DEPARTMENT_WORDS or token in _ROLES for token in folded):
        return False
    if any(token in NOT_NAME_WORDS for token in folded):
        return False
    if any(re.search(r"(?:tion|sion|ment|ness|ship|ism|ities|ings)$", token) for token in folded):
        return False  # words made from verbs and adjectives ("Coordination", "Management"), not names
    if len([t for t in folded if t not in NAME_PARTICLES]) > 4:
        return False
    if re.match(r"\s*\d", text[end : end + 3]):  # "Dok Noord 12": a street and its number
        return False
    if re.search(r"\d[\s,]*$", text[max(0, start - 3) : start]):  # "9000 Ghent": a town after its postcode
        return False
    value = normalise_value(name)
    if value in excluded or any(value in other.split(" ") or value == other for other in excluded):
        return False
    excluded_words = {word for other in excluded for word in other.split(" ")}
    if any(word in excluded_words for word in value.split(" ") if word not in NAME_PARTICLES):
        return False  # a word of the record's organisation or address ("Contoso Pharmaceuticals")
    return all(len(token.rstrip(".")) >= 1 for token in tokens) and any(
        len(token.rstrip(".")) >= MIN_PART_LENGTH for token in tokens
    )

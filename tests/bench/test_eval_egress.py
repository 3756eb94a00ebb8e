"""`manage.py eval_egress` on a small seeded set: the canaries, the leak check, and the figures it prints."""

from __future__ import annotations

import json
import unicodedata
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from governance import classes as dc
from portal.bench import egress
from portal.bench.canaries import CONTEXT_STYLE, DIGITS, STYLES, WORD, Planted, generate
from tests.governance.factories import policy_with

pytestmark = pytest.mark.django_db


def _run(tmp_path: Path, **options: Any) -> dict[str, Any]:
    out = StringIO()
    call_command("eval_egress", customers=6, seed=3, contoso=str(tmp_path / "absent"), json=True, stdout=out,
                 stderr=StringIO(), **options)  # fmt: skip
    return dict(json.loads(out.getvalue()))


# ---- the generator ---------------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_canaries_and_another_seed_others() -> None:
    first, again, other = generate(seed=3, customers=8), generate(seed=3, customers=8), generate(seed=4, customers=8)
    assert first.customers_csv() == again.customers_csv() and first.prompts == again.prompts
    assert first.customers_csv() != other.customers_csv()


def test_the_canaries_cover_every_style_and_the_hard_shapes() -> None:
    canaries = generate(seed=15, customers=30)
    assert {prompt.style for prompt in canaries.prompts} == set(STYLES)
    names = {customer.record_name for customer in canaries.customers}
    assert any(", " in name for name in names)  # "Last, First"
    assert any(name.endswith((" Jr.", " Sr.", " II", " III")) for name in names)
    text = "\n".join(turn for prompt in canaries.prompts for turn in prompt.turns)
    assert any(unicodedata.category(ch) == "Cf" for ch in text)  # invisible characters inside names
    assert "| ACC-" in text and any(c.org_in_street and c.organisation in c.street_line for c in canaries.customers)
    for prompt in canaries.prompts:
        customer = canaries.customers[prompt.customer]
        assert prompt.planted and all(p.value for p in prompt.planted)
        if prompt.about_customer:  # the record's own values are watched too
            assert any(p.field == "account" for p in prompt.planted)
            assert any(p.style == CONTEXT_STYLE for p in prompt.planted)
        if prompt.style == "given_name_in_context":
            assert prompt.about_customer and len(prompt.turns) == 2 and customer.last not in prompt.turns[1]


def test_a_value_counts_as_leaked_in_any_spelling_but_not_inside_another_word() -> None:
    sent = egress.normalised("Dear MARÍA Okafor-Smith, call 06-1044 6904 or see ACC 12345678.")
    runs = egress.digit_runs("call 06-1044 6904 or see ACC 12345678.")
    assert egress.is_leaked(Planted("given_name", "s", "Maria", WORD), sent, runs)
    assert egress.is_leaked(Planted("surname", "s", "Okafor", WORD), sent, runs)
    assert not egress.is_leaked(Planted("surname", "s", "Oka", WORD), sent, runs)
    assert egress.is_leaked(Planted("phone", "s", "610446904", DIGITS), sent, runs)
    assert egress.is_leaked(Planted("account", "s", "12345678", DIGITS), sent, runs)
    assert egress.is_leaked(Planted("email", "s", "Ma\u200bria", "text"), sent, runs)
    assert not egress.is_leaked(Planted("phone", "s", "999999", DIGITS), sent, runs)


# ---- the command -------------------------------------------------------------------------------------------
def test_it_reports_every_figure_and_the_plain_spellings_stay_home(tmp_path: Path) -> None:
    figures = _run(tmp_path)

    assert figures["customers_imported"] == 6 and figures["interactions_imported"] == 6
    assert figures["prompts"] == 18 and figures["turns_answered"] + figures["turns_blocked"] == figures["turns"]
    for name in ("prompts_leaking", "values_leaked", "restored_exact", "egress_ms_p95", "brackets_unbalanced"):
        assert figures[name] is not None, name
    assert sum(row["planted"] for row in figures["values_leaked_by_style"].values()) == figures["values_planted"]
    assert sum(row["leaked"] for row in figures["values_leaked_by_field"].values()) == figures["values_leaked"]
    assert figures["masked_words_per_1000"].startswith("skipped: Contoso passages not found")
    # what the gate has always caught: a name written as in the record, an e-mail address
    assert figures["values_leaked_by_style"]["plain"]["leaked"] == 0
    assert figures["values_leaked_by_field"]["email"]["leaked"] == 0
    assert figures["restored_exact_by_spelling"]["exact"] == 1.0
    # and it leaves nothing behind
    from portal.customers.models import Customer

    assert not Customer.objects.filter(name__in=[c.record_name for c in generate(seed=3, customers=6).customers])


def test_it_fails_when_the_policy_lets_values_out(tmp_path: Path, olivia: Any) -> None:
    from governance.services import policy_publish

    allow = {c: dc.ALLOW for c in dc.DATA_CLASSES if c not in (dc.CREDENTIAL,)}
    policy_publish(actor=olivia, reason="eval", document=policy_with({"Staff": {"classes": allow}}))

    figures = _run(tmp_path, styles="plain,account_table")

    assert figures["prompts"] > 0 and figures["prompts_leaking"] == figures["prompts"]
    assert figures["values_leaked"] == figures["values_planted"]
    with pytest.raises(CommandError, match="prompts sent a canary value in clear"):
        _run(tmp_path, styles="plain", fail_on_leak=True)


def test_it_prints_one_line_per_figure(tmp_path: Path) -> None:
    out = StringIO()
    call_command("eval_egress", customers=2, prompts_per_customer=1, seed=5, contoso=str(tmp_path), stdout=out,
                 stderr=StringIO())  # fmt: skip
    lines = out.getvalue().splitlines()
    assert any(line.startswith("prompts_leaking: ") and line.endswith("(target 0)") for line in lines)
    assert any(line.startswith("values_leaked.field.") for line in lines)
    assert any(line.startswith("values_leaked.style.") for line in lines)
    assert any(line.startswith("restored_exact: ") for line in lines)
    assert any(line.startswith("egress_ms_p95: ") for line in lines)
    assert all(": " in line for line in lines)


def test_unknown_styles_are_refused() -> None:
    with pytest.raises(CommandError, match="Unknown styles: nope"):
        call_command("eval_egress", styles="nope", stdout=StringIO())


def test_masked_words_counts_what_the_policy_masks_in_benign_text() -> None:
    figures = egress.masked_words(["Refunds take 14 days.", "Write to hr@contoso.example about it."])
    assert figures["benign_words"] == 9 and figures["masked_words_by_class"] == {"EMAIL": 1}
    assert figures["masked_words_per_1000"] == 111.11 and figures["benign_passages_withheld"] == 0


def test_the_contoso_passages_read_when_present(shared_data: Path) -> None:
    passages = egress.contoso_passages(shared_data / "business_kb" / "contoso")
    assert len(passages) > 100 and any("Northwind" in text for text in passages)


def test_an_eaten_bracket_unbalances_the_question_and_a_masked_bracketed_number_does_not() -> None:
    asked = "Call her today (+44 20 7946 0958) about it."
    assert egress._bracket_balance("Call her today (<PHONE_1> about it.") != egress._bracket_balance(asked)
    assert egress._bracket_balance("Call her today (<PHONE_1>) about it.") == egress._bracket_balance(asked)
    assert egress._bracket_balance("From <PHONE_1>;") == egress._bracket_balance("From (201) 518-0659;")

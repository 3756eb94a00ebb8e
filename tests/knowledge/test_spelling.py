"""The lexical leg's spelling tolerance: a query word no searched base holds is searched as the base's nearest
term too, never as a term of a base the searcher cannot read, and never for codes, numbers or short words."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from knowledge import search, selectors
from tests.accounts.factories import UserFactory
from tests.knowledge.factories import KnowledgeBaseFactory, grant, ready_document


def test_the_nearest_term_within_the_allowed_edits_is_chosen() -> None:
    vocabulary = {"servic": 40.0, "hear": 12.0, "heard": 1.0, "gender": 3.0, "health": 90.0, "type": 30.0}
    chosen = search.choose_corrections(["servis", "hearin", "gendr", "helth", "zebra"], vocabulary)
    assert chosen == {"servis": "servic", "hearin": "hear", "gendr": "gender", "helth": "health"}


def test_a_swapped_pair_of_letters_is_one_edit() -> None:
    # Levenshtein counts the swap as two edits, and "recite" (two edits, in more chunks) would win
    assert search.choose_corrections(["recieve"], {"receive": 1.0, "recite": 50.0}) == {"recieve": "receive"}
    assert search.choose_corrections(["plna"], {"plan": 5.0}) == {"plna": "plan"}


def test_long_terms_take_two_edits_and_a_misspelt_ending_counts_as_one_beyond_its_stem() -> None:
    assert search.choose_corrections(["leuekmogenesi"], {"leukemogenesi": 1.0}) == {"leuekmogenesi": "leukemogenesi"}
    assert search.choose_corrections(["hearin"], {"hear": 1.0, "heart": 5.0}) == {"hearin": "hear"}


def test_ties_go_to_the_term_in_most_chunks() -> None:
    assert search.choose_corrections(["heath"], {"health": 9.0, "heaths": 2.0}) == {"heath": "health"}
    assert search.choose_corrections(["heath"], {"health": 2.0, "heaths": 9.0}) == {"heath": "heaths"}


@pytest.mark.parametrize(
    ("term", "vocabulary"),
    [
        ("cat", {"cart": 5.0}),  # three letters: too many neighbours
        ("a320", {"a321": 5.0}),  # a code
        ("2024", {"2025": 5.0}),  # a number
        ("helt", {"health": 9.0}),  # two edits for a four-letter word
        ("zealth", {"health": 9.0}),  # the first letters differ
        ("uncultur", {"unruptur": 9.0}),  # two edits under nine letters
        ("remolds", {"remo": 9.0}),  # more than two letters beyond a term it starts with
    ],
)
def test_no_correction_where_it_would_be_a_guess(term: str, vocabulary: dict[str, float]) -> None:
    assert search.choose_corrections([term], vocabulary) == {}


@pytest.mark.django_db
class TestSearchingMisspeltWords:
    @pytest.fixture
    def bases(self) -> dict[str, Any]:
        staff = KnowledgeBaseFactory.create(name="Staff handbook")
        grant(staff, "view", role="Staff")
        grant(staff, "view", role="Governance officer")
        ready_document(
            staff, "hearing.md", b"Hearing care services: hearing aids and yearly hearing tests are covered."
        )
        ready_document(staff, "dental.md", b"Dental care: two cleanings a year are covered by the plan.")
        ready_document(staff, "vision.md", b"Vision care: glasses every second year.")
        ready_document(staff, "bonus.md", b"Quarterly bonuses are paid in Zorbleton.", roles=["Governance officer"])
        secret = KnowledgeBaseFactory.create(name="Board minutes")
        ready_document(secret, "merger.md", b"The merger with Fabrikam closes in March.")
        return {"staff": staff, "secret": secret}

    def test_a_misspelt_question_finds_what_the_right_spelling_finds(self, bases: dict[str, Any], sam: Any) -> None:
        acl = search.acl_for(sam)
        right = search.lexical_leg("hearing services", acl, 10)
        wrong = search.lexical_leg("hearin servises", acl, 10)
        assert right.ranking and not right.corrections
        assert wrong.corrections == {"hearin": "hear", "servis": "servic"}
        assert [chunk_id for chunk_id, _ in wrong.ranking] == [chunk_id for chunk_id, _ in right.ranking]
        assert wrong.query_weight == pytest.approx(right.query_weight)
        # lexical: in a base of four chunks every idf is small and fusion follows the vector leg, an approximate
        # index walk (the vector leg's correction has its own test)
        found = selectors.retrieve(
            user=sam, query="what hearin servises are coverd", k=3, audit_event=False, snippets=True, mode="lexical"
        )
        assert found and found[0].document_title == "hearing"
        # the snippet marks the words as the document writes them
        assert "<mark>services</mark>" in found[0].snippet_html and "<mark>Hearing</mark>" in found[0].snippet_html

    def test_the_setting_turns_it_off(self, bases: dict[str, Any], sam: Any, django_assert_num_queries: Any) -> None:
        acl = search.acl_for(sam)
        with override_settings(KNOWLEDGE_SPELLING_CORRECTION=False), django_assert_num_queries(1):
            leg = search.lexical_leg("hearin servises", acl, 10)
        assert leg.ranking == [] and leg.corrections == {}

    def test_words_are_corrected_only_to_terms_of_bases_the_searcher_reads(
        self, bases: dict[str, Any], sam: Any
    ) -> None:
        assert search.lexical_leg("fabrikan merjer", search.acl_for(sam), 10).corrections == {}
        root = UserFactory.create(username="root", is_superuser=True)
        leg = search.lexical_leg("fabrikan merjer", search.acl_for(root), 10)
        assert leg.corrections == {"fabrikan": "fabrikam", "merjer": "merger"}
        assert leg.ranking

    def test_a_query_of_known_words_takes_one_statement(
        self, bases: dict[str, Any], sam: Any, django_assert_num_queries: Any
    ) -> None:
        acl = search.acl_for(sam)
        with django_assert_num_queries(1):
            search.lexical_leg("dental plan", acl, 10)
        with django_assert_num_queries(3):  # the search, the neighbours' lookup, the corrected search
            search.lexical_leg("dentl plan", acl, 10)

    def test_the_vector_leg_searches_the_words_as_the_base_writes_them(
        self, bases: dict[str, Any], sam: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        acl = search.acl_for(sam)
        leg = search.lexical_leg("What hearin servises, please?", acl, 10)
        assert search.corrected_query("What hearin servises, please?", leg) == "What hearing services, please?"
        assert search.corrected_query("dental plan", search.lexical_leg("dental plan", acl, 10)) is None

        searched: list[str] = []
        vector_search_for = search.vector_search_for

        def spy(query: str, *args: Any) -> list[tuple[int, float]]:
            searched.append(query)
            return vector_search_for(query, *args)

        monkeypatch.setattr(search, "vector_search_for", spy)
        searched_as: list[str] = []
        search.hybrid_search("hearin servises", acl, 3, searched_as=searched_as)
        assert searched[-1] == "hearing services" and searched_as == ["hearing services"]

    def test_a_real_word_the_base_does_not_use_stays_itself(
        self, bases: dict[str, Any], sam: Any, olivia: Any, django_assert_num_queries: Any
    ) -> None:
        acl = search.acl_for(sam)
        # "heating" stems to "heat", one edit from the base's "hear"; being a dictionary word, it is never
        # read as it, and no lookup is made
        with django_assert_num_queries(1):
            leg = search.lexical_leg("heating dental", acl, 10)
        assert leg.corrections == {}
        # nor for one beside a word outside the dictionary that the base holds ("Zorbleton")
        officer = search.acl_for(olivia)
        with django_assert_num_queries(1):
            assert search.lexical_leg("heating Zorbleton", officer, 10).corrections == {}
        assert search.lexical_leg("hearng dental", acl, 10).corrections == {"hearng": "hear"}

    def test_acronyms_and_symbols_are_left_as_typed(self, bases: dict[str, Any], sam: Any) -> None:
        acl = search.acl_for(sam)
        assert search.lexical_leg("Dentl plan", acl, 10).corrections == {"dentl": "dental"}
        assert search.lexical_leg("DENTL plan", acl, 10).corrections == {}
        assert search.lexical_leg("DentL plan", acl, 10).corrections == {}

    def test_the_search_page_says_what_it_also_searched_for_from_words_the_searcher_may_read(
        self, bases: dict[str, Any], sam: Any, olivia: Any
    ) -> None:
        client = Client()
        client.force_login(sam)
        url = reverse("knowledge:search")
        page = client.get(url, {"q": "hearin & servises"}).content.decode()
        assert "Also searched as “hearing &amp; services”." in page
        assert "<mark>services</mark>" in page
        # "Zorbletom" is one edit from a word of a document only officers read: Sam's search gets neither the
        # word nor its document
        page = client.get(url, {"q": "Zorbletom bonuses"}).content.decode()
        assert "Also searched as" not in page and "Zorbleton" not in page
        client.force_login(olivia)
        page = client.get(url, {"q": "Zorbletom bonuses"}).content.decode()
        assert "Also searched as “Zorbleton bonuses”." in page

"""Pages and permissions: allowed, refused (403) and outsiders (404)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from guardian.shortcuts import remove_perm

from audit.models import AuditEvent
from portal.assistant.forms import ERROR_EMPTY_TITLE
from portal.assistant.models import Conversation, Message, MessageStatus
from tests.accounts.factories import UserFactory
from tests.assistant.factories import AssistantProfileFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sam_client(client: Any, sam: Any) -> Any:
    client.force_login(sam)
    return client


URL_NAMES = {"rename": "conversation_rename", "delete": "conversation_delete"}


def conversation_url(conversation: Any, name: str = "conversation") -> str:
    return reverse(f"assistant:{URL_NAMES.get(name, name)}", kwargs={"conversation_id": conversation.pk})


# ---- who may use the assistant and which profile
def test_the_navigation_shows_the_assistant_to_roles_that_may_use_it(client: Any, sam: Any, audrey: Any):
    client.force_login(sam)
    assert 'href="/assistant/"' in client.get("/").content.decode()
    client.force_login(audrey)
    assert 'href="/assistant/"' not in client.get("/").content.decode()


def test_users_without_the_assistant_permission_get_403(client: Any, oscar: Any, audrey: Any, conversation: Any):
    for user in (oscar, audrey):
        client.force_login(user)
        assert client.get(reverse("assistant:chat")).status_code == 403
        assert client.get(reverse("assistant:profile_list")).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client: Any, conversation: Any):
    response = client.get(conversation_url(conversation))
    assert response.status_code == 302 and "/login/" in response["Location"]
    response = client.post(conversation_url(conversation, "ask"), {"question": "Hi"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not Message.objects.exists()


def test_new_conversation_only_with_a_profile_granted_to_the_user(sam_client: Any, sam: Any, profile: Any):
    hidden = AssistantProfileFactory.create(name="Board helper", usable_by=["Administrator"])

    page = sam_client.get(reverse("assistant:chat") + "?all").content.decode()
    assert "Handbook helper" in page and "Board helper" not in page

    response = sam_client.post(reverse("assistant:conversation_new"), {"profile": hidden.pk})
    assert response.status_code == 400 and not Conversation.objects.exists()

    response = sam_client.post(reverse("assistant:conversation_new"), {"profile": profile.pk})
    conversation = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == conversation_url(conversation)
    assert (conversation.owner, conversation.profile) == (sam, profile)
    assert AuditEvent.objects.filter(action="assistant.conversation_created").exists()


def test_a_profile_granted_to_one_user_is_usable_by_that_user_only(client: Any, sam: Any):
    personal = AssistantProfileFactory.create(name="Sam's helper", usable_by=[sam])
    other = UserFactory.create(username="sara", roles=["Staff"])

    client.force_login(sam)
    assert client.post(reverse("assistant:conversation_new"), {"profile": personal.pk}).status_code == 302
    client.force_login(other)
    assert client.post(reverse("assistant:conversation_new"), {"profile": personal.pk}).status_code == 400


def test_the_profile_list_shows_usable_profiles_and_grants_to_administrators(client: Any, sam: Any, alice: Any,
                                                                             profile: Any):  # fmt: skip
    client.force_login(sam)
    page = client.get(reverse("assistant:profile_list")).content.decode()
    assert "Handbook helper" in page and "Who may use it" not in page

    client.force_login(alice)
    page = client.get(reverse("assistant:profile_list")).content.decode()
    assert "Handbook helper" in page and "Who may use it" in page and ">Staff<" in page


# ---- nobody reads another user's conversation
@pytest.mark.parametrize("name", ["conversation"])
def test_other_peoples_conversations_are_404(client: Any, conversation: Any, alice: Any, name: str):
    other = UserFactory.create(username="sara", roles=["Staff"])
    for user in (other, alice):
        client.force_login(user)
        assert client.get(conversation_url(conversation, name)).status_code == 404
        for action in ("rename", "delete", "ask"):
            response = client.post(conversation_url(conversation, action), {"title": "Mine", "question": "Hi"})
            assert response.status_code == 404, action
    conversation.refresh_from_db()
    assert conversation.title != "Mine" and not conversation.messages.exists()


def test_the_conversation_list_holds_only_the_users_own_conversations(sam_client: Any, sam: Any, profile: Any):
    mine = ConversationFactory.create(owner=sam, profile=profile, title="My refunds question")
    ConversationFactory.create(
        owner=UserFactory.create(username="sara", roles=["Staff"]), profile=profile, title="Sara's secret"
    )

    page = sam_client.get(conversation_url(mine)).content.decode()
    assert "My refunds question" in page and "Sara&#x27;s secret" not in page and "Sara's secret" not in page


def test_feedback_on_someone_elses_answer_is_404(client: Any, conversation: Any):
    answer = MessageFactory.create(conversation=conversation, role="assistant", content="A")
    client.force_login(UserFactory.create(username="sara", roles=["Staff"]))
    response = client.post(reverse("assistant:feedback", kwargs={"message_id": answer.pk}), {"rating": "1"})
    assert response.status_code == 404


def test_asking_with_a_withdrawn_profile_is_403_and_stores_nothing(sam_client: Any, conversation: Any):
    remove_perm("assistant.use_assistantprofile", Group.objects.get(name="Staff"), conversation.profile)

    response = sam_client.post(conversation_url(conversation, "ask"), {"question": "Hi"})
    assert response.status_code == 403 and not conversation.messages.exists()


# ---- conversation management
def test_rename_and_delete_a_conversation(sam_client: Any, conversation: Any):
    response = sam_client.post(conversation_url(conversation, "rename"), {"title": "Refunds"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Refunds" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.title == "Refunds"

    response = sam_client.post(conversation_url(conversation, "rename"), {"title": "   "})
    assert response.status_code == 400
    html = response.content.decode()  # the error is shown, in the opened rename panel
    assert '<details class="conversation-actions" open>' in html
    assert ERROR_EMPTY_TITLE in html

    response = sam_client.post(conversation_url(conversation, "delete"))
    assert response.status_code == 302 and not Conversation.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"assistant.conversation_renamed", "assistant.conversation_deleted"} <= actions


# ---- asking without JavaScript
def test_asking_without_javascript_stores_question_and_answer_and_shows_the_page(sam_client: Any, conversation: Any):
    response = sam_client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})

    question, answer = conversation.messages.order_by("pk")
    assert response.status_code == 302 and response["Location"].endswith(f"#message-{answer.pk}")
    assert question.content == "When are refunds paid?" and answer.reply_to == question
    page = sam_client.get(response["Location"]).content.decode()
    assert "When are refunds paid?" in page and "14 days" in page
    source = reverse("assistant:citation_open", kwargs={"message_id": answer.pk, "number": 1})
    assert f'href="{source}"' in page  # the citation opens the document page through the answer's source route
    assert "<summary>Details</summary>" in page and "offline" in page


def test_opening_a_cited_source_leads_to_its_page_and_is_counted_once_as_a_ranker_signal(
    client: Any, sam_client: Any, conversation: Any
):
    from knowledge import ranking
    from portal.assistant.models import CitationOpen

    sam_client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})
    answer = conversation.messages.get(role="assistant")
    cited = [c for c in answer.citations if c["cited"]]
    assert cited, "the offline answer cites its passage"
    source = reverse("assistant:citation_open", kwargs={"message_id": answer.pk, "number": cited[0]["number"]})

    for _ in range(2):
        response = sam_client.get(source)
        assert response.status_code == 302 and response["Location"] == cited[0]["url"]
    opened = CitationOpen.objects.get()
    assert (opened.message, opened.chunk_id, opened.user) == (answer, cited[0]["chunk_id"], conversation.owner)
    events = AuditEvent.objects.filter(action="assistant.citation_opened")
    assert events.count() == 1 and events.get().details["chunk_id"] == cited[0]["chunk_id"]
    from knowledge.models import Chunk

    base = Chunk.objects.get(pk=cited[0]["chunk_id"]).knowledge_base_id
    assert ranking.LabelledQuestion("When are refunds paid?", frozenset({cited[0]["chunk_id"]})) in (
        ranking.signals_for(base)
    )

    # a number the answer did not cite, and another person's answer, are 404; a page elsewhere that sends the
    # browser here is followed without counting
    uncited = reverse("assistant:citation_open", kwargs={"message_id": answer.pk, "number": 99})
    assert sam_client.get(uncited).status_code == 404
    CitationOpen.objects.all().delete()
    assert sam_client.get(source, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 302
    assert not CitationOpen.objects.exists()
    client.force_login(UserFactory.create(username="sara", roles=["Staff"]))
    assert client.get(source).status_code == 404


def test_an_empty_question_is_400_with_the_error_shown(sam_client: Any, conversation: Any):
    response = sam_client.post(conversation_url(conversation, "ask"), {"question": "   "})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert not conversation.messages.exists()


def test_the_details_panel_shows_route_model_tokens_cost_and_manifest(sam_client: Any, conversation: Any):
    sam_client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})
    answer = conversation.messages.get(role="assistant")

    page = sam_client.get(conversation_url(conversation)).content.decode()
    for expected in (answer.route["reason"], answer.usage["model_name"], "Tokens", "Cost", "first token",
                     "Full egress manifest", "question"):  # fmt: skip
        assert expected in page
    # staff may not read the audit trail: no link to it (it would be a 403)
    assert "/audit/?object_type=assistant.message" not in page
    # the offline model answered: names, not catalog keys, and nothing is said to have been sent
    assert answer.route["candidates"] == ["offline"]
    assert "<dt>Candidates</dt><dd>Offline extractive model (built in)</dd>" in page
    assert "<code>offline</code>" not in page
    assert "<dt>Kept on this server</dt>" in page and "<dt>Sent</dt>" not in page
    assert '<td data-label="Decision">kept on this server</td>' in page
    assert '<td data-label="Decision">sent</td>' not in page


def test_those_who_review_the_audit_trail_get_a_link_to_the_answers_events(client: Any, alice: Any, profile: Any):
    from guardian.shortcuts import assign_perm

    assign_perm("assistant.use_assistantprofile", alice, profile)
    conversation = Conversation.objects.create(owner=alice, profile=profile)
    client.force_login(alice)
    client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})
    answer = conversation.messages.get(role="assistant")
    page = client.get(conversation_url(conversation)).content.decode()
    assert f"/audit/?object_type=assistant.message&amp;object_id={answer.pk}" in page


def test_a_cloud_answer_names_its_candidates_and_says_what_was_sent(sam_client: Any, conversation: Any):
    from tests.routing.factories import CatalogModelFactory

    model = CatalogModelFactory.create(display_name="Claude Sonnet")
    MessageFactory.create(
        conversation=conversation, role="assistant", content="Within 14 days.", status=MessageStatus.COMPLETE,
        route={"task_type": "routine", "tier": "economy", "reason": "r", "candidates": [model.key, "offline"]},
        usage={"model_key": model.key, "model_name": "Claude Sonnet", "provider": "anthropic",
               "attempts": [{"model_key": model.key, "model": "Claude Sonnet", "provider": "anthropic",
                             "outcome": "success"}]},
        manifest={"parts": [{"kind": "question", "decision": "sent", "chars": 10}]},
    )  # fmt: skip
    page = sam_client.get(conversation_url(conversation)).content.decode()
    assert "<dt>Candidates</dt><dd>Claude Sonnet, Offline extractive model (built in)</dd>" in page
    assert model.key not in page
    assert "<dt>Sent</dt>" in page and '<td data-label="Decision">sent</td>' in page


def test_the_heading_names_the_customer_only_for_those_who_may_see_the_record(client: Any, sam: Any, profile: Any):
    from tests.customers.factories import CustomerFactory

    customer = CustomerFactory.create(name="Ada Lovelace", restricted=True, owner=sam)
    conversation = Conversation.objects.create(owner=sam, profile=profile, customer_id=customer.pk)
    client.force_login(sam)
    page = client.get(conversation_url(conversation)).content.decode()
    assert "about Ada Lovelace" in page and f"customer #{customer.pk}" not in page
    customer.owner = None
    customer.save()
    page = client.get(conversation_url(conversation)).content.decode()
    assert "Ada Lovelace" not in page and "about a customer record you cannot see" in page


# ---- feedback
def test_thumbs_down_with_a_comment_is_saved_and_audited(sam_client: Any, conversation: Any):
    answer = MessageFactory.create(conversation=conversation, role="assistant", content="Within a year.")
    url = reverse("assistant:feedback", kwargs={"message_id": answer.pk})

    response = sam_client.post(url, {"rating": "-1", "comment": "Wrong: 14 days."}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200 and "feedback is saved" in response.content.decode()
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (-1, "Wrong: 14 days.")
    event = AuditEvent.objects.get(action="assistant.feedback_given")
    assert event.details["rating"] == -1 and event.object_id == str(answer.pk)


def test_the_feedback_control_is_two_thumbs_then_an_optional_comment_and_absent_under_errors(
    sam_client: Any, conversation: Any
):
    answer = MessageFactory.create(conversation=conversation, role="assistant", content="Within 14 days.")
    failed = MessageFactory.create(conversation=conversation, role="assistant", content="", status=MessageStatus.ERROR,
                            error="No model could answer right now.")  # fmt: skip
    page = sam_client.get(conversation_url(conversation)).content.decode()
    assert f'id="feedback-{answer.pk}"' in page and f'id="feedback-{failed.pk}"' not in page
    assert 'name="rating" value="1"' in page and "Add a comment" not in page  # not rated yet: thumbs only
    assert "{#" not in page and "{% comment" not in page  # no template comment leaks into the page

    url = reverse("assistant:feedback", kwargs={"message_id": answer.pk})
    rated = sam_client.post(url, {"rating": "1", "comment": ""}, HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-pressed="true"' in rated and "Add a comment (optional)" in rated
    assert '<details class="feedback-comment" open>' in rated  # the comment box opens after a thumb
    sam_client.post(url, {"rating": "1", "comment": "Exactly right."}, HTTP_HX_REQUEST="true")
    # changing the thumb keeps the comment (the thumbs form carries it)
    again = sam_client.post(url, {"rating": "-1", "comment": "Exactly right."}, HTTP_HX_REQUEST="true")
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (-1, "Exactly right.")
    assert 'name="comment" value="Exactly right."' in again.content.decode()


def test_feedback_needs_a_rating_and_only_applies_to_answers(sam_client: Any, conversation: Any):
    answer = MessageFactory.create(conversation=conversation, role="assistant", content="A")
    question = MessageFactory.create(conversation=conversation, content="Q")
    assert sam_client.post(reverse("assistant:feedback", kwargs={"message_id": answer.pk}), {}).status_code == 400
    response = sam_client.post(reverse("assistant:feedback", kwargs={"message_id": question.pk}), {"rating": "1"})
    assert response.status_code == 404


# ---- preview before send
def _staff_must_preview() -> None:
    """Publish a policy under which the Staff role sees what would leave before it is sent."""
    from governance.services import policy_publish
    from tests.governance.factories import policy_with

    policy_publish(
        actor=None, reason="preview for staff", document=policy_with({"Staff": {"preview_before_send": True}})
    )


def test_roles_with_preview_see_exactly_what_leaves_and_nothing_is_sent_before_they_confirm(
    sam_client: Any, conversation: Any, fake_model: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
):
    _staff_must_preview()
    sam_client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})

    question = conversation.messages.get()
    assert question.status == MessageStatus.AWAITING_CONFIRMATION and fake_provider.requests == []
    page = sam_client.get(conversation_url(conversation)).content.decode()
    assert "Check before sending" in page and "Refunds are paid within 14 days" in page

    confirm = reverse("assistant:confirm", kwargs={"conversation_id": conversation.pk, "question_id": question.pk})
    response = sam_client.post(confirm)

    assert response.status_code == 302
    assert len(fake_provider.requests) == 1
    sent = fake_provider.requests[0].body["messages"]
    assert sent == question.manifest["preview"]["messages"]
    question.refresh_from_db()
    assert question.status == MessageStatus.COMPLETE
    assert conversation.messages.get(role="assistant").status == MessageStatus.COMPLETE
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "assistant.preview_shown" in actions and "assistant.preview_confirmed" in actions


def test_a_preview_can_be_cancelled_and_then_nothing_is_sent(
    sam_client: Any, conversation: Any, fake_model: Any, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
):
    _staff_must_preview()
    sam_client.post(conversation_url(conversation, "ask"), {"question": "When are refunds paid?"})
    question = conversation.messages.get()

    kwargs = {"conversation_id": conversation.pk, "question_id": question.pk}
    assert sam_client.post(reverse("assistant:cancel", kwargs=kwargs)).status_code == 302
    assert sam_client.post(reverse("assistant:confirm", kwargs=kwargs)).status_code == 404
    question.refresh_from_db()
    assert question.status == MessageStatus.CANCELLED and fake_provider.requests == []


def test_a_new_conversation_can_be_about_a_customer_the_user_may_see(sam_client: Any, profile: Any):
    from tests.customers.factories import CustomerFactory

    visible = CustomerFactory.create(name="Ada Lovelace")
    hidden = CustomerFactory.create(name="Hidden Person", restricted=True)

    page = sam_client.get(reverse("assistant:chat") + "?all").content.decode()
    assert "Ada Lovelace" in page and "Hidden Person" not in page
    response = sam_client.post(reverse("assistant:conversation_new"), {"profile": profile.pk, "customer": hidden.pk})
    assert response.status_code == 400

    sam_client.post(reverse("assistant:conversation_new"), {"profile": profile.pk, "customer": visible.pk})
    assert Conversation.objects.get().customer_id == visible.pk

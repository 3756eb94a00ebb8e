from __future__ import annotations

from django.urls import path

from portal.assistant import views

app_name = "assistant"

urlpatterns = [
    path("", views.chat_view, name="chat"),
    path("profiles/", views.profile_list_view, name="profile_list"),
    path("profiles/new/", views.profile_new_view, name="profile_new"),
    path("profiles/<int:profile_id>/edit/", views.profile_edit_view, name="profile_edit"),
    path("profiles/<int:profile_id>/access/", views.profile_access_view, name="profile_access"),
    path("search/", views.conversation_search_view, name="search"),
    path("conversations/new/", views.conversation_new_view, name="conversation_new"),
    path("conversations/<int:conversation_id>/", views.conversation_view, name="conversation"),
    path("conversations/<int:conversation_id>/rename/", views.conversation_rename_view, name="conversation_rename"),
    path("conversations/<int:conversation_id>/delete/", views.conversation_delete_view, name="conversation_delete"),
    path("conversations/<int:conversation_id>/export/", views.conversation_export_view, name="conversation_export"),
    path("conversations/<int:conversation_id>/ask/", views.ask_view, name="ask"),
    path("conversations/<int:conversation_id>/attach/", views.attach_view, name="attach"),
    path("conversations/<int:conversation_id>/attachments/", views.attachments_view, name="attachments"),
    path(
        "conversations/<int:conversation_id>/questions/<int:question_id>/confirm/",
        views.confirm_view,
        name="confirm",
    ),
    path(
        "conversations/<int:conversation_id>/questions/<int:question_id>/cancel/",
        views.cancel_view,
        name="cancel",
    ),
    path(
        "conversations/<int:conversation_id>/questions/<int:question_id>/regenerate/",
        views.regenerate_view,
        name="regenerate",
    ),
    path("messages/<int:message_id>/feedback/", views.feedback_view, name="feedback"),
    path("messages/<int:message_id>/sources/<int:number>/", views.citation_open_view, name="citation_open"),
]

from __future__ import annotations

from django.urls import path

from portal.memory import views

app_name = "memory"

urlpatterns = [
    path("", views.memory_list_view, name="memory_list"),
    path("review/", views.memory_review_queue_view, name="review_queue"),
    path("new/", views.memory_create_view, name="memory_create"),
    path("remember/<int:message_id>/", views.memory_remember_view, name="remember"),
    path("learn/<int:conversation_id>/", views.memory_learn_view, name="learn"),
    path("<int:memory_id>/", views.memory_detail_view, name="memory_detail"),
    path("<int:memory_id>/review/", views.memory_review_view, name="memory_review"),
    path("<int:memory_id>/archive/", views.memory_archive_view, name="memory_archive"),
    path("<int:memory_id>/delete/", views.memory_delete_view, name="memory_delete"),
]

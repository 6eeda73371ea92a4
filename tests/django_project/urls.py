"""URLs of the test project: the article detail view gives the webhooks' ``ref``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def article_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A placeholder: only its URL matters."""
    return HttpResponse(str(pk))


urlpatterns = [
    path("articles/<int:pk>/", article_detail, name="article-detail"),
    path("tags/<slug:name>/", article_detail, name="tag-detail"),
]

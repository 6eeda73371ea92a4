"""
Articles with webhooks, declared as a Thorn user would: created, changed, removed,
published (a ``now_eq`` transition) and tagged, untagged, tags cleared (many-to-many).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from twisted_hooks.contrib.django import ModelEvent, model_reverser, webhook_model


class Tag(models.Model):
    """A tag."""

    name = models.SlugField(unique=True)

    def __str__(self) -> str:
        return self.name


@webhook_model(sender_field="author")
class Article(models.Model):
    """An article; its author is the sender of its webhooks."""

    title = models.CharField(max_length=100)
    state = models.CharField(max_length=20, default="draft")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    tags = models.ManyToManyField(Tag, related_name="articles", blank=True)

    class webhooks:
        on_create = ModelEvent("article.created")
        on_change = ModelEvent("article.changed")
        on_delete = ModelEvent("article.removed")
        on_publish = ModelEvent(
            "article.published", state__now_eq="published"
        ).dispatches_on_change()
        on_tag = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")
        on_untag = ModelEvent("article.untagged").dispatches_on_m2m_remove("tags")
        on_tags_cleared = ModelEvent("article.tags_cleared").dispatches_on_m2m_clear("tags")

        def payload(self, article: Article) -> dict[str, Any]:
            return {
                "title": article.title,
                "state": article.state,
                "tags": sorted(tag.name for tag in article.tags.all()) if article.pk else [],
            }

    def get_absolute_url(self) -> str:
        return reverse("article-detail", kwargs={"pk": self.pk})


@webhook_model(
    on_create=ModelEvent(
        "note.{.kind}",
        reverse=model_reverser("tag-detail", name="kind"),
        signal_honors_transaction=False,
    ),
)
class Note(models.Model):
    """A note whose event name is a template, with a Django ``model_reverser`` ref and
    sent at once, inside transactions too."""

    kind = models.SlugField()

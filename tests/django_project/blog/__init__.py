"""The blog app of the test project: articles with webhooks."""

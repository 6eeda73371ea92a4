"""
A real Django project (SQLite in a temporary directory) for the Django integration's
tests in ``tests/django_cases/``.
"""

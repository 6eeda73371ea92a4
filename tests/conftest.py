"""
Shared pytest configuration of the main test session.
"""

# tests/crochet_cases/ runs the reactor in a crochet thread, which cannot share a process
# with the trial tests that use the real reactor; tests/test_sync.py runs it in a
# subprocess of its own.
collect_ignore = ["crochet_cases"]
# tests/durability/ holds the worker program the durability tests run as child processes.
collect_ignore.append("durability")
# tests/django_cases/ configures Django (process-global settings) and runs the reactor in
# crochet's thread; tests/test_django.py runs it in a subprocess of its own.
collect_ignore.append("django_cases")

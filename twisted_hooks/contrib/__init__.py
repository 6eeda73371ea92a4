"""
Integrations of twisted_hooks with other frameworks.

Each one is a subpackage that needs its framework installed (an extra of the project):
:mod:`twisted_hooks.contrib.django` (``pip install twisted_hooks[django]``).
"""

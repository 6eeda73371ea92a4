"""
The twisted_hooks service: ``twist hooks`` / ``twistd -n hooks``.

Configuration (:mod:`~twisted_hooks.service.config`), the HTTP API
(:mod:`~twisted_hooks.service.api`), the twistd plugin's service
(:mod:`~twisted_hooks.service.tap`) and the ``twisted-hooks`` command
(:mod:`~twisted_hooks.service.cli`).
"""

"""
Tests for :mod:`twisted_hooks.service.config`: the INI file, the environment overrides,
the command-line overrides, the errors, and the mapping onto
:class:`~twisted_hooks.webhooks.Settings`.
"""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import attrs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.service.config import (
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    DEFAULTS,
    LISTENER_KEYS,
    RANGES,
    ConfigError,
    ListenerSpec,
    ServiceConfig,
    env_name,
    load_config,
)
from twisted_hooks.service.tap import Options, listen_endpoint
from twisted_hooks.webhooks import Settings
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.subscribers import parse_subscribers
from twisted_hooks.webhooks.validators import (
    DEFAULT_RECIPIENT_VALIDATORS,
    RecipientPolicy,
    SecurityError,
    block_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "doc" / "examples" / "twisted_hooks.ini"

#: A file setting every key of the fixed sections to a value other than its default.
FULL = """
[hooks]
listen = tcp:9000
database = postgresql://hooks@db/hooks
base_url = https://hooks.example.com/api/
secret = whsec_c2VjcmV0
timeout = 7.5
max_concurrency = 32
max_per_host = 4
max_response_body = 1024
lease = 30
poll_interval = 0.5
keep_delivered = 3600
keep_keys = 600
max_request_body = 2048
shutdown_timeout = 0

[retry]
schedule = 1, 2.5,
    60
jitter = 0
retry_after_cap = 120

[validators]
protocols = https
ports = 443, 8443
block_internal = false
blocked_networks = 203.0.113.0/24, 2001:db8::/32
allowed_networks = 10.1.0.0/16

[health]
circuit_failures = 3
circuit_cooldown = 12.5
disable_failures = 9
disable_period = 0
"""


#: A well-formed secret for static subscribers.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class ConfigTestCase(SynchronousTestCase):
    """Helpers: write a configuration file and load it."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        Path(path).write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def load(
        self,
        text: str | None = None,
        environ: dict[str, str] | None = None,
        overrides: dict[str, object] | None = None,
    ) -> ServiceConfig:
        path = self.write(text) if text is not None else None
        return load_config(path, environ or {}, overrides)  # type: ignore[arg-type]

    def error(
        self,
        text: str | None = None,
        environ: dict[str, str] | None = None,
        overrides: dict[str, object] | None = None,
    ) -> str:
        """The message of the ConfigError loading this raises."""
        with self.assertRaises(ConfigError) as caught:
            self.load(text, environ, overrides)
        return str(caught.exception)


class DefaultTests(ConfigTestCase):
    """What no file and no environment give."""

    def test_defaults_are_the_settings_defaults(self) -> None:
        """
        With no file, the settings are ``Settings()``'s, except ``poll_interval``: the
        service polls every second so that other processes' events are seen.
        """
        config = self.load()
        self.assertEqual(config.settings, attrs.evolve(Settings(), poll_interval=1.0))
        self.assertEqual(config.settings.retry, RetryPolicy())
        self.assertEqual(config.settings.policy, RecipientPolicy())
        self.assertEqual(config.settings.policy.validators, DEFAULT_RECIPIENT_VALIDATORS)

    def test_every_overlapping_default_matches_settings(self) -> None:
        """
        Each default of :data:`DEFAULTS` that names a ``Settings`` field has the value of
        that field in ``Settings()`` (``poll_interval`` excepted, on purpose).
        """
        settings = Settings()
        fields = {f.name for f in attrs.fields(Settings)}
        checked = []
        for section in ("hooks", "health"):
            for key, text in DEFAULTS[section].items():
                if key in fields and key != "poll_interval":
                    self.assertEqual(float(text), getattr(settings, key), key)
                    checked.append(key)
        self.assertEqual(len(checked), 11)
        retry = DEFAULTS["retry"]
        self.assertEqual(
            tuple(float(d) for d in retry["schedule"].split(",")), RetryPolicy().delays
        )
        self.assertEqual(float(retry["jitter"]), RetryPolicy().jitter)
        self.assertEqual(float(retry["retry_after_cap"]), RetryPolicy().retry_after_cap)

    def test_other_defaults(self) -> None:
        """
        The service's own defaults: the listen endpoint, the database, no secret (the
        application generates one), 1 MiB request bodies, 15 s to finish on shutdown, no
        subscribers, no listeners; and ``ServiceConfig()`` is the same.
        """
        config = self.load()
        self.assertEqual(config.listen, "tcp:8000:interface=127.0.0.1")
        self.assertEqual(config.listen, DEFAULT_LISTEN)
        self.assertEqual(config.database, "sqlite:twisted_hooks.sqlite3")
        self.assertEqual(config.database, DEFAULT_DATABASE)
        self.assertIsNone(config.default_secret)
        self.assertEqual(config.max_request_body, 1048576)
        self.assertEqual(config.shutdown_timeout, 15.0)
        self.assertEqual(config.static_subscribers, {})
        self.assertEqual(config.listeners, ())
        self.assertIsNone(config.path)
        self.assertEqual(attrs.evolve(config, raw={}), ServiceConfig())

    def test_raw_has_every_default(self) -> None:
        """``raw`` holds every key of the fixed sections as text, under ``section.key``."""
        raw = self.load().raw
        expected = {
            f"{section}.{key}": text
            for section, keys in DEFAULTS.items()
            for key, text in keys.items()
        }
        self.assertEqual(raw, expected)

    def test_empty_file(self) -> None:
        """An empty file gives the defaults, and is remembered as ``path``."""
        path = self.write("")
        config = load_config(path, {})
        self.assertEqual(config.settings, self.load().settings)
        self.assertEqual(config.path, path)


class FileTests(ConfigTestCase):
    """Every key of every section, read from a file."""

    def test_hooks_section(self) -> None:
        """Every ``[hooks]`` key lands on its field."""
        config = self.load(FULL)
        settings = config.settings
        self.assertEqual(config.listen, "tcp:9000")
        self.assertEqual(config.database, "postgresql://hooks@db/hooks")
        self.assertEqual(config.base_url, "https://hooks.example.com/api")
        self.assertEqual(config.default_secret, "whsec_c2VjcmV0")
        self.assertEqual(settings.timeout, 7.5)
        self.assertEqual(settings.max_concurrency, 32)
        self.assertEqual(settings.max_per_host, 4)
        self.assertEqual(settings.max_response_body, 1024)
        self.assertEqual(settings.lease, 30.0)
        self.assertEqual(settings.poll_interval, 0.5)
        self.assertEqual(settings.keep_delivered, 3600.0)
        self.assertEqual(settings.keep_keys, 600.0)
        self.assertEqual(config.max_request_body, 2048)
        self.assertEqual(config.shutdown_timeout, 0.0)

    def test_retry_section(self) -> None:
        """
        ``[retry]`` gives the RetryPolicy: the schedule is split on commas and white space
        (also across continuation lines), a trailing comma is fine.
        """
        retry = self.load(FULL).settings.retry
        self.assertEqual(
            retry, RetryPolicy(delays=(1.0, 2.5, 60.0), jitter=0.0, retry_after_cap=120)
        )

    def test_empty_schedule_means_no_retries(self) -> None:
        """An empty ``schedule`` gives one attempt and no retry."""
        retry = self.load("[retry]\nschedule =\n").settings.retry
        self.assertEqual(retry.delays, ())
        self.assertEqual(retry.max_attempts, 1)

    def test_validators_section(self) -> None:
        """
        ``[validators]`` gives the RecipientPolicy: ensure_protocol, ensure_port and
        block_cidr_network from their lists, no block_internal_ips when
        ``block_internal = false``, and the allow-list.
        """
        policy = self.load(FULL).settings.policy
        self.assertEqual(
            policy.validators,
            (
                ensure_protocol("https"),
                ensure_port(443, 8443),
                block_cidr_network("203.0.113.0/24", "2001:db8::/32"),
            ),
        )
        self.assertEqual(policy.allowed_networks, (ipaddress.ip_network("10.1.0.0/16"),))
        with self.assertRaises(SecurityError):
            policy.check_url("https://203.0.113.5/")
        with self.assertRaises(SecurityError):
            policy.check_url("http://example.com/")
        policy.check_url("https://192.168.1.1:8443/")

    def test_validators_any_port_and_local_development(self) -> None:
        """
        An empty ``ports`` allows any port; ``allowed_networks`` opens loopback to
        block_internal_ips, which still guards the rest.
        """
        policy = self.load(
            """
            [validators]
            ports =
            allowed_networks = 127.0.0.0/8, ::1/128
            """
        ).settings.policy
        self.assertEqual(
            policy.validators, (block_internal_ips(), ensure_protocol("http", "https"))
        )
        policy.check_url("http://127.0.0.1:8080/hook")
        policy.check_url("http://[::1]:9/hook")
        with self.assertRaises(SecurityError):
            policy.check_url("http://10.0.0.1/hook")

    def test_booleans(self) -> None:
        """``block_internal`` accepts configparser's spellings of true and false."""
        for text, expected in [("yes", True), ("On", True), ("1", True), ("no", False)]:
            policy = self.load(f"[validators]\nblock_internal = {text}\n").settings.policy
            self.assertEqual(block_internal_ips() in policy.validators, expected, text)

    def test_health_section(self) -> None:
        """Every ``[health]`` key lands on its Settings field."""
        settings = self.load(FULL).settings
        self.assertEqual(settings.circuit_failures, 3)
        self.assertEqual(settings.circuit_cooldown, 12.5)
        self.assertEqual(settings.disable_failures, 9)
        self.assertEqual(settings.disable_period, 0.0)

    def test_empty_optional_values(self) -> None:
        """
        An empty ``poll_interval`` does not poll, an empty ``keep_delivered`` keeps
        delivered deliveries, an empty ``secret`` leaves the secret to be generated.
        """
        config = self.load("[hooks]\npoll_interval =\nkeep_delivered =\nsecret =\n")
        self.assertIsNone(config.settings.poll_interval)
        self.assertIsNone(config.settings.keep_delivered)
        self.assertIsNone(config.default_secret)

    def test_settings_not_in_the_file_keep_their_defaults(self) -> None:
        """Settings fields the file has no key for (batch, phase, ...) keep ``Settings()``'s."""
        settings = self.load(FULL).settings
        default = Settings()
        for name in ("batch", "record_delay", "phase", "backend", "busy_retry", "prune_interval"):
            self.assertEqual(getattr(settings, name), getattr(default, name), name)

    def test_inline_comments(self) -> None:
        """``;`` after white space starts a comment, as in the design's example."""
        config = self.load("[hooks]\ntimeout = 20   ; seconds\nsecret =      ; generated\n")
        self.assertEqual(config.settings.timeout, 20.0)
        self.assertIsNone(config.default_secret)

    def test_subscribers_section(self) -> None:
        """
        ``[subscribers]`` gives Thorn's THORN_SUBSCRIBERS shapes: one URL, several URLs,
        a JSON object (here across two lines), a JSON list; pattern keys keep their case.
        """
        config = self.load(
            f"""
            [hooks]
            secret = {SECRET}
            [subscribers]
            user.Created = https://example.com/hooks/user
            balance.negative = https://a.example.com/e
                https://b.example.com/e
            address.* = {{"url": "https://foo.example.com/e",
                "content_type": "application/x-www-form-urlencoded"}}
            order.* = [{{"url": "https://c.example.com/e"}}, "https://d.example.com/e"]
            """
        )
        self.assertEqual(
            config.static_subscribers,
            {
                "user.Created": "https://example.com/hooks/user",
                "balance.negative": ["https://a.example.com/e", "https://b.example.com/e"],
                "address.*": {
                    "url": "https://foo.example.com/e",
                    "content_type": "application/x-www-form-urlencoded",
                },
                "order.*": [{"url": "https://c.example.com/e"}, "https://d.example.com/e"],
            },
        )
        subscribers, callables = parse_subscribers(config.static_subscribers, "whsec_x")
        self.assertEqual(len(subscribers), 6)
        self.assertEqual(callables, ())
        self.assertEqual(config.raw["subscribers.user.Created"], "https://example.com/hooks/user")

    def test_listener_sections(self) -> None:
        """
        Each ``[listener:NAME]`` section is a ListenerSpec, in the file's order: ``use``,
        ``phase`` (default ``after``), the match spec (default kind ``webhook``) and the
        listener's own settings; its keys are in ``raw`` under ``listener.NAME.``.
        """
        config = self.load(
            """
            [listener:queue]
            use = twisted_hooks.listeners.redis
            url = redis://127.0.0.1:6379/0
            key = twisted_hooks.events

            [listener:audit]
            use = twisted_hooks.listeners.log
            phase = before
            match.name = order.created
            match.owner = alice
            level = info
            """
        )
        queue, audit = config.listeners
        self.assertEqual(
            queue,
            ListenerSpec(
                name="queue",
                use="twisted_hooks.listeners.redis",
                phase="after",
                match_spec={"kind": "webhook"},
                settings={"url": "redis://127.0.0.1:6379/0", "key": "twisted_hooks.events"},
            ),
        )
        self.assertEqual(
            audit,
            ListenerSpec(
                name="audit",
                use="twisted_hooks.listeners.log",
                phase="before",
                match_spec={"kind": "webhook", "name": "order.created", "owner": "alice"},
                settings={"level": "info"},
            ),
        )
        self.assertEqual(audit.section, "listener:audit")
        self.assertEqual(audit.prefix, "listener.audit.")
        self.assertEqual(config.raw["listener.audit.level"], "info")
        self.assertEqual(config.raw["listener.audit.use"], "twisted_hooks.listeners.log")
        self.assertEqual(config.raw["listener.audit.match.name"], "order.created")
        self.assertEqual(config.raw["listener.queue.key"], "twisted_hooks.events")

    def test_listener_match_kinds(self) -> None:
        """
        ``match.kind = operational`` matches operational events; an empty ``match.kind``
        matches every kind (no kind in the spec).
        """
        config = self.load(
            """
            [listener:ops]
            use = twisted_hooks.listeners.log
            match.kind = operational
            [listener:all]
            use = twisted_hooks.listeners.log
            match.kind =
            """
        )
        ops, every = config.listeners
        self.assertEqual(ops.match_spec, {"kind": "operational"})
        self.assertEqual(every.match_spec, {})

    def test_example_file_loads(self) -> None:
        """
        The commented example shipped as ``doc/examples/twisted_hooks.ini`` loads, sets
        every key of every fixed section, and its values are the defaults.
        """
        config = load_config(str(EXAMPLE), {})
        text = EXAMPLE.read_text(encoding="utf-8")
        for section, keys in DEFAULTS.items():
            self.assertIn(f"[{section}]", text)
            for key in keys:
                self.assertIn(f"\n{key} =", text, f"[{section}] {key}")
        self.assertEqual(config.settings, self.load().settings)
        self.assertEqual(config.listen, DEFAULT_LISTEN)
        self.assertEqual(config.database, DEFAULT_DATABASE)
        self.assertEqual([spec.name for spec in config.listeners], ["audit", "queue"])
        self.assertEqual(
            set(config.static_subscribers), {"user.created", "balance.negative", "address.*"}
        )
        for key in LISTENER_KEYS:
            self.assertIn(f"listener.audit.{key}", config.raw)


class EnvironmentTests(ConfigTestCase):
    """``TWISTED_HOOKS_<SECTION>_<KEY>`` overrides."""

    def test_env_name(self) -> None:
        """Section and key are upper-cased, every other character becomes ``_``."""
        self.assertEqual(env_name("hooks", "timeout"), "TWISTED_HOOKS_HOOKS_TIMEOUT")
        self.assertEqual(env_name("listener:audit", "level"), "TWISTED_HOOKS_LISTENER_AUDIT_LEVEL")
        self.assertEqual(
            env_name("listener:my-log", "match.name"), "TWISTED_HOOKS_LISTENER_MY_LOG_MATCH_NAME"
        )
        self.assertEqual(env_name("retry"), "TWISTED_HOOKS_RETRY_")

    def test_override_without_a_file(self) -> None:
        """A fixed section's key is overridden with no file at all."""
        config = self.load(
            environ={
                "TWISTED_HOOKS_HOOKS_TIMEOUT": "20",
                "TWISTED_HOOKS_RETRY_SCHEDULE": "1, 2",
                "TWISTED_HOOKS_VALIDATORS_ALLOWED_NETWORKS": "10.0.0.0/8",
                "TWISTED_HOOKS_HEALTH_CIRCUIT_FAILURES": "2",
                "TWISTED_HOOKS_HOOKS_LISTEN": "tcp:1234",
            }
        )
        self.assertEqual(config.settings.timeout, 20.0)
        self.assertEqual(config.settings.retry.delays, (1.0, 2.0))
        self.assertEqual(
            config.settings.policy.allowed_networks, (ipaddress.ip_network("10.0.0.0/8"),)
        )
        self.assertEqual(config.settings.circuit_failures, 2)
        self.assertEqual(config.listen, "tcp:1234")
        self.assertEqual(config.raw["hooks.timeout"], "20")

    def test_environment_wins_over_the_file(self) -> None:
        """A variable replaces the file's value."""
        config = self.load(
            "[hooks]\ntimeout = 5\nmax_per_host = 3\n",
            environ={"TWISTED_HOOKS_HOOKS_TIMEOUT": "9"},
        )
        self.assertEqual(config.settings.timeout, 9.0)
        self.assertEqual(config.settings.max_per_host, 3)

    def test_listener_section(self) -> None:
        """
        A listener section of the file is overridden: a key of the file, ``use``, a
        ``match.*`` key not in the file, and a key only in the environment (lower-cased).
        """
        config = self.load(
            """
            [listener:audit]
            use = twisted_hooks.listeners.log
            level = info
            """,
            environ={
                "TWISTED_HOOKS_LISTENER_AUDIT_LEVEL": "debug",
                "TWISTED_HOOKS_LISTENER_AUDIT_MATCH_NAME": "order.paid",
                "TWISTED_HOOKS_LISTENER_AUDIT_CHANNEL": "#ops",
            },
        )
        (audit,) = config.listeners
        self.assertEqual(audit.settings, {"level": "debug", "channel": "#ops"})
        self.assertEqual(audit.match_spec, {"kind": "webhook", "name": "order.paid"})
        self.assertEqual(config.raw["listener.audit.level"], "debug")
        self.assertEqual(config.raw["listener.audit.channel"], "#ops")
        self.assertEqual(config.raw["listener.audit.match.name"], "order.paid")

    def test_longest_section_wins(self) -> None:
        """
        With ``[listener:audit]`` and ``[listener:audit_x]``,
        ``TWISTED_HOOKS_LISTENER_AUDIT_X_LEVEL`` is ``[listener:audit_x] level``, not
        ``[listener:audit] x_level``.
        """
        config = self.load(
            """
            [listener:audit]
            use = twisted_hooks.listeners.log
            [listener:audit_x]
            use = twisted_hooks.listeners.log
            """,
            environ={
                "TWISTED_HOOKS_LISTENER_AUDIT_X_LEVEL": "error",
                "TWISTED_HOOKS_LISTENER_AUDIT_LEVEL": "warn",
            },
        )
        audit, audit_x = config.listeners
        self.assertEqual(audit.settings, {"level": "warn"})
        self.assertEqual(audit_x.settings, {"level": "error"})

    def test_subscribers_override(self) -> None:
        """A subscriber pattern of the file is overridden by its variable."""
        config = self.load(
            f"[hooks]\nsecret = {SECRET}\n[subscribers]\nuser.created = https://a.example.com/e\n",
            environ={"TWISTED_HOOKS_SUBSCRIBERS_USER_CREATED": "https://b.example.com/e"},
        )
        self.assertEqual(config.static_subscribers, {"user.created": "https://b.example.com/e"})

    def test_unrelated_variables_are_ignored(self) -> None:
        """
        Variables that fit no section (the test suite's own, a listener not in the file)
        and variables without the prefix change nothing.
        """
        config = self.load(
            environ={
                "TWISTED_HOOKS_TEST_REDIS": "redis://127.0.0.1:6379/0",
                "TWISTED_HOOKS_LISTENER_GHOST_USE": "twisted_hooks.listeners.log",
                "HOOKS_TIMEOUT": "1",
                "TWISTED_HOOKS_HOOKS": "x",
            }
        )
        self.assertEqual(config, self.load())

    def test_unknown_key_in_a_fixed_section(self) -> None:
        """A variable for a fixed section's unknown key is an error naming the variable."""
        message = self.error(environ={"TWISTED_HOOKS_HOOKS_TIMEOUTS": "1"})
        self.assertIn("environment variable TWISTED_HOOKS_HOOKS_TIMEOUTS", message)
        self.assertIn("[hooks] has no key 'timeouts'", message)
        self.assertIn("TWISTED_HOOKS_HOOKS_TIMEOUT", message)

    def test_bad_value_names_the_variable(self) -> None:
        """A bad value from the environment is an error naming the variable, key and value."""
        message = self.error(environ={"TWISTED_HOOKS_HOOKS_TIMEOUT": "soon"})
        self.assertEqual(
            message,
            "environment variable TWISTED_HOOKS_HOOKS_TIMEOUT: [hooks] timeout = 'soon': "
            "expected a number of seconds greater than 0 and at most 3600, such as 10",
        )

    def test_ambiguous_sections(self) -> None:
        """Two sections with the same variable names are an error when a variable names them."""
        text = "[listener:a-b]\nuse = m\n[listener:a.b]\nuse = m\n"
        self.assertEqual(len(self.load(text).listeners), 2)
        message = self.error(text, environ={"TWISTED_HOOKS_LISTENER_A_B_LEVEL": "info"})
        self.assertIn("[listener:a-b] and [listener:a.b]", message)


class OverrideTests(ConfigTestCase):
    """The command line wins over the file and the environment."""

    def test_listen_and_database(self) -> None:
        """``listen`` and ``database`` replace the file's and the environment's."""
        config = self.load(
            "[hooks]\nlisten = tcp:1\ndatabase = sqlite:a.db\n",
            environ={"TWISTED_HOOKS_HOOKS_LISTEN": "tcp:2", "TWISTED_HOOKS_HOOKS_DATABASE": "x"},
            overrides={"listen": "tcp:3", "database": "sqlite:b.db"},
        )
        self.assertEqual(config.listen, "tcp:3")
        self.assertEqual(config.database, "sqlite:b.db")
        self.assertEqual(config.raw["hooks.listen"], "tcp:3")

    def test_none_is_not_given(self) -> None:
        """An override of ``None`` (an option not given) changes nothing."""
        config = self.load(
            "[hooks]\nlisten = tcp:1\n",
            overrides={"listen": None, "database": None, "allow_network": None},
        )
        self.assertEqual(config.listen, "tcp:1")
        self.assertEqual(config.database, DEFAULT_DATABASE)

    def test_allow_network_is_appended(self) -> None:
        """
        ``--allow-network`` networks (one, or several) are appended to the file's
        ``allowed_networks``; ``allow-network`` is the same option.
        """
        config = self.load(
            "[validators]\nallowed_networks = 10.0.0.0/8\n",
            overrides={"allow_network": ["127.0.0.0/8", "::1/128"]},
        )
        self.assertEqual(
            config.settings.policy.allowed_networks,
            tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "127.0.0.0/8", "::1/128")),
        )
        self.assertEqual(
            config.raw["validators.allowed_networks"], "10.0.0.0/8, 127.0.0.0/8, ::1/128"
        )
        single = self.load(overrides={"allow-network": "192.168.0.0/16"})
        self.assertEqual(
            single.settings.policy.allowed_networks, (ipaddress.ip_network("192.168.0.0/16"),)
        )

    def test_bad_allow_network(self) -> None:
        """A bad ``--allow-network`` is an error naming the option and the value."""
        message = self.error(overrides={"allow_network": ["10.0.0.0/8", "ten"]})
        self.assertIn("--allow-network: [validators] allowed_networks = 'ten'", message)
        self.assertIn("CIDR", message)

    def test_unknown_override(self) -> None:
        """An override the configuration does not know is an error naming it."""
        message = self.error(overrides={"config": "x.ini"})
        self.assertIn("unknown command-line override 'config'", message)
        self.assertIn("listen, database, allow_network", message)

    def test_bad_listen_override(self) -> None:
        """An empty ``--listen`` is an error naming the option."""
        message = self.error(overrides={"listen": " "})
        self.assertIn("the command line (--listen): [hooks] listen = ' '", message)
        self.assertIn("strports", message)


class ErrorTests(ConfigTestCase):
    """Every error names what is wrong and says what is expected."""

    def test_config_error_is_a_value_error(self) -> None:
        """ConfigError is a ValueError, with the source, section and key as attributes."""
        path = self.write("[hooks]\ntimeout = x\n")
        with self.assertRaises(ValueError) as caught:
            load_config(path, {})
        error = caught.exception
        assert isinstance(error, ConfigError)
        self.assertEqual((error.source, error.section, error.key), (path, "hooks", "timeout"))

    def test_missing_file(self) -> None:
        """A missing file is an error naming its path."""
        path = self.mktemp()
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        self.assertEqual(
            str(caught.exception),
            f"the configuration file {path} does not exist; give the path of an existing "
            "file (or no configuration file, to use the defaults)",
        )

    def test_unreadable_file(self) -> None:
        """A directory given as the file is an error naming the path."""
        path = self.mktemp()
        Path(path).mkdir()
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        self.assertIn(f"the configuration file {path} cannot be read", str(caught.exception))

    def test_not_an_ini_file(self) -> None:
        """A key before any section, or a key given twice, is an error naming the file."""
        path = self.write("timeout = 10\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        message = str(caught.exception)
        self.assertTrue(message.startswith(f"{path} is not a valid INI file: "), message)
        self.assertIn("under a [section] header", message)
        message = self.error("[hooks]\ntimeout = 1\ntimeout = 2\n")
        self.assertIn("already exists", message)

    def test_unknown_section(self) -> None:
        """An unknown section is an error naming the file and section, with a suggestion."""
        path = self.write("[hook]\ntimeout = 1\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        self.assertEqual(
            str(caught.exception),
            f"{path}: unknown section [hook] (did you mean [hooks]?); the sections are "
            "[hooks], [retry], [validators], [health], [subscribers] and [listener:NAME]",
        )

    def test_default_section_is_unknown(self) -> None:
        """configparser's ``[DEFAULT]`` has no meaning here: it is an unknown section."""
        self.assertIn("unknown section [DEFAULT]", self.error("[DEFAULT]\ntimeout = 1\n"))

    def test_unknown_key(self) -> None:
        """An unknown key is an error naming the file, section and key, with a suggestion."""
        path = self.write("[retry]\nshedule = 1\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        self.assertEqual(
            str(caught.exception),
            f"{path}: unknown key 'shedule' in section [retry] (did you mean 'schedule'?); "
            "the keys of [retry] are schedule, jitter, retry_after_cap",
        )

    def test_keys_are_case_sensitive(self) -> None:
        """``Timeout`` is not ``timeout``."""
        self.assertIn("unknown key 'Timeout'", self.error("[hooks]\nTimeout = 1\n"))

    def test_listener_without_name(self) -> None:
        """``[listener:]`` is an error asking for a name."""
        self.assertIn("has no listener name", self.error("[listener:]\nuse = x\n"))

    def test_bad_numbers(self) -> None:
        """
        Every numeric key refuses text, and values below its minimum (negative, zero
        where it must be positive, a fraction where it must be whole), naming section,
        key and value and saying what is expected.
        """
        seconds = "a number of seconds greater than 0 and at most 3600, such as 10"
        whole = "a whole number from 1 to {}, such as 16"
        nbytes = "a number of bytes, a whole number from 1 to 67108864, such as 65536"
        fraction = "a fraction of at least 0 and below 1, such as 0.2"
        schedule = (
            "delays in seconds, each from 0 to 2592000, at most 100 of them, separated by "
            "commas, such as 5, 300, 1800 (nothing: no retries)"
        )
        cases = [
            ("hooks", "timeout", "ten", seconds),
            ("hooks", "timeout", "-1", seconds),
            ("hooks", "timeout", "0", seconds),
            ("hooks", "timeout", "nan", seconds),
            ("hooks", "max_concurrency", "0", whole.format(100000)),
            ("hooks", "max_per_host", "2.5", whole.format(10000)),
            ("hooks", "max_response_body", "-5", nbytes),
            (
                "hooks",
                "lease",
                "inf",
                "a number of seconds greater than 0 and at most 86400, such as 10",
            ),
            (
                "hooks",
                "poll_interval",
                "0",
                "a number of seconds greater than 0.01 and at most 3600, such as 10 (or nothing)",
            ),
            (
                "hooks",
                "keep_delivered",
                "-1",
                "a number of seconds greater than 0 and at most 315360000, such as 10 "
                "(or nothing)",
            ),
            (
                "hooks",
                "keep_keys",
                "0",
                "a number of seconds greater than 0 and at most 31536000, such as 10",
            ),
            ("hooks", "max_request_body", "1MiB", nbytes),
            ("hooks", "shutdown_timeout", "-1", "a number of seconds from 0 to 3600, such as 15"),
            ("retry", "schedule", "5, -1", schedule),
            ("retry", "jitter", "1", fraction),
            ("retry", "jitter", "-0.1", fraction),
            (
                "retry",
                "retry_after_cap",
                "-3",
                "a number of seconds from 0 to 2592000, such as 15",
            ),
            ("health", "circuit_failures", "0", whole.format(1000000)),
            (
                "health",
                "circuit_cooldown",
                "0",
                "a number of seconds greater than 0 and at most 604800, such as 10",
            ),
            ("health", "disable_failures", "x", whole.format(1000000)),
            (
                "health",
                "disable_period",
                "-1",
                "a number of seconds from 0 to 31536000, such as 15",
            ),
        ]
        for section, key, value, expected in cases:
            path = self.write(f"[{section}]\n{key} = {value}\n")
            shown = "-1" if (section, key, value) == ("retry", "schedule", "5, -1") else value
            with self.assertRaises(ConfigError) as caught:
                load_config(path, {})
            self.assertEqual(
                str(caught.exception),
                f"{path}: [{section}] {key} = {shown!r}: expected {expected}",
                (section, key, value),
            )

    def test_numbers_above_their_range(self) -> None:
        """
        Every numeric key refuses a value above its maximum (RANGES), naming the file,
        section, key and value and giving the range; the maximum itself is accepted.
        """
        for (section, key), (_, maximum) in RANGES.items():
            if (section, key) == ("retry", "jitter"):
                continue  # below 1: refused at 1 already (test_bad_numbers)
            top = str(int(maximum)) if maximum == int(maximum) else str(maximum)
            too_big = str(int(maximum) + 1) if key != "poll_interval" else "3600.5"
            extra = "timeout = 1\n" if key == "lease" else ""
            if key == "timeout":
                extra = "lease = 86400\n"
            path = self.write(f"[{section}]\n{extra}{key} = {too_big}\n")
            with self.assertRaises(ConfigError, msg=(section, key)) as caught:
                load_config(path, {})
            error = caught.exception
            self.assertEqual((error.source, error.section, error.key), (path, section, key))
            self.assertIn(f"{path}: [{section}] {key} = {too_big!r}: expected", str(error))
            self.assertIn(top, str(error), (section, key))
            accepted = self.load(f"[{section}]\n{extra}{key} = {top}\n")
            self.assertEqual(accepted.raw[f"{section}.{key}"], top)

    def test_huge_values_that_used_to_wedge(self) -> None:
        """Values that made the service compute times it could not format, or loop for
        ever, are refused: 1e300 seconds anywhere, a tiny poll interval, a retry
        schedule of 101 delays, a Retry-After cap of a century."""
        for section, key, value in [
            ("hooks", "timeout", "1e300"),
            ("hooks", "keep_delivered", "1e300"),
            ("hooks", "poll_interval", "1e-300"),
            ("retry", "schedule", "5, 1e300"),
            ("retry", "retry_after_cap", "3153600000"),
            ("health", "circuit_cooldown", "1e300"),
        ]:
            message = self.error(f"[{section}]\n{key} = {value}\n")
            self.assertIn(f"[{section}] {key} = ", message, (section, key))
        message = self.error("[retry]\nschedule = " + ", ".join(["1"] * 101) + "\n")
        self.assertIn("[retry] schedule = ", message)
        self.assertIn("expected at most 100 delays (it has 101)", message)
        self.assertEqual(
            len(self.load("[retry]\nschedule = " + ", ".join(["1"] * 100)).settings.retry.delays),
            100,
        )

    def test_numbers_in_ascii_digits_only(self) -> None:
        """
        Numbers are read in ASCII digits only: digits of other scripts (which int() and
        float() read), superscripts, underscores, signs, inf and nan are errors naming
        the key, in the file and in the environment; ports too.
        """
        for text in ("٣", "\uff15", "²", "1_000", "+5", "1 0", "0x10", "1e3"):
            message = self.error(f"[hooks]\nmax_per_host = {text}\n")
            self.assertIn(f"[hooks] max_per_host = {text!r}: expected a whole number", message)
        for text in ("٣", "\uff15", "1_0", "+5", "inf", "-inf", "nan", "1e999"):
            message = self.error(f"[hooks]\nshutdown_timeout = {text}\n")
            self.assertIn(f"[hooks] shutdown_timeout = {text!r}: expected", message)
        message = self.error(environ={"TWISTED_HOOKS_HOOKS_MAX_PER_HOST": "٣"})
        self.assertIn("TWISTED_HOOKS_HOOKS_MAX_PER_HOST: [hooks] max_per_host = '٣'", message)
        message = self.error("[validators]\nports = 80, ٤٤٣\n")
        self.assertIn("[validators] ports = '٤٤٣': expected TCP ports", message)
        message = self.error("[retry]\nschedule = 5, ٣٠٠\n")
        self.assertIn("[retry] schedule = '٣٠٠': expected delays", message)
        config = self.load("[hooks]\ntimeout = 2.5\nlease = 1e2\nshutdown_timeout = .5\n")
        self.assertEqual(
            (config.settings.timeout, config.settings.lease, config.shutdown_timeout),
            (2.5, 100.0, 0.5),
        )

    def test_base_url(self) -> None:
        """
        [hooks] base_url (or TWISTED_HOOKS_HOOKS_BASE_URL) must be an http(s) URL with a
        host and no user name, password, query or fragment; its trailing / is dropped;
        empty (the default) is None.
        """
        self.assertIsNone(self.load().base_url)
        self.assertEqual(
            self.load("[hooks]\nbase_url = http://[::1]:8080/\n").base_url, "http://[::1]:8080"
        )
        config = self.load(environ={"TWISTED_HOOKS_HOOKS_BASE_URL": "https://h.example/x/"})
        self.assertEqual(config.base_url, "https://h.example/x")
        for value, reason in [
            ("hooks.example.com", "must start with http:// or https://"),
            ("ftp://hooks.example.com", "must start with http:// or https://"),
            ("https://", "has no host"),
            ("https://user:pw@hooks.example.com", "user name or password"),
            ("https://user@hooks.example.com", "user name or password"),
            ("https://hooks.example.com/?a=1", "must not have a query"),
            ("https://hooks.example.com/?", "must not have a query"),
            ("https://hooks.example.com/#top", "must not have a fragment"),
            ("https://hooks.example.com:99999/", "not a valid URL"),
            ("https://hooks.exämple.com/", "printable ASCII"),
            ("https://hooks.example.com/a b", "printable ASCII"),
        ]:
            path = self.write(f"[hooks]\nbase_url = {value}\n")
            with self.assertRaises(ConfigError, msg=value) as caught:
                load_config(path, {})
            error = caught.exception
            self.assertEqual((error.section, error.key), ("hooks", "base_url"))
            self.assertIn(f"{path}: [hooks] base_url = {value!r}: expected the API's", str(error))
            self.assertIn(reason, str(error), value)
        message = self.error(environ={"TWISTED_HOOKS_HOOKS_BASE_URL": "https://a@b.example"})
        self.assertIn(
            "environment variable TWISTED_HOOKS_HOOKS_BASE_URL: [hooks] base_url", message
        )

    def test_listen_port_in_ascii_digits_only(self) -> None:
        """--listen PORT takes ASCII digits only: "٣" and "²" (which str.isdigit() takes)
        are not ports but endpoint descriptions, refused with the forms accepted."""
        self.assertEqual(listen_endpoint("8000"), "tcp:8000:interface=127.0.0.1")
        for text in ("\u0663", "\u00b2", "\uff18\uff10"):
            with self.assertRaises(ValueError, msg=text) as raised:
                listen_endpoint(text)
            self.assertIn(f"--listen {text!r}", str(raised.exception))
            with self.assertRaises(usage.UsageError):
                Options().parseOptions(["--listen", text, "--database", "memory:"])

    def test_static_subscriber_limits_out_of_range(self) -> None:
        """A static subscriber whose rate_limit or max_concurrency is outside its range is
        an error naming the file, [subscribers], its pattern and the field."""
        for field, value in (("rate_limit", "1e-300"), ("max_concurrency", "1000001")):
            text = (
                f"[hooks]\nsecret = {SECRET}\n[subscribers]\n"
                f'a.* = {{"url": "https://example.com/h", "{field}": {value}}}\n'
            )
            path = self.write(text)
            with self.assertRaises(ConfigError) as caught:
                load_config(path, {})
            error = caught.exception
            self.assertEqual(
                (error.source, error.section, error.key), (path, "subscribers", "a.*")
            )
            self.assertIn(f"subscriber field {field!r} must be from", str(error))

    def test_lease_must_exceed_timeout(self) -> None:
        """A lease not longer than the timeout is an error naming ``lease``."""
        message = self.error("[hooks]\ntimeout = 30\nlease = 30\n")
        self.assertIn("[hooks] lease = '30': expected a number of seconds longer than", message)
        self.assertIn("[hooks] timeout (30)", message)

    def test_bad_validators(self) -> None:
        """Bad protocols, ports, booleans and CIDR networks name the key and the value."""
        cases = [
            ("protocols", "http, ftp", "'ftp': expected http, https, or both"),
            ("protocols", "", "'': expected http, https, or both"),
            ("ports", "80, 70000", "'70000': expected TCP ports from 1 to 65535"),
            ("ports", "http", "'http': expected TCP ports from 1 to 65535"),
            ("block_internal", "maybe", "'maybe': expected true or false"),
            ("blocked_networks", "10.0.0.0/33", "'10.0.0.0/33': expected networks in CIDR"),
            ("allowed_networks", "localhost", "'localhost': expected networks in CIDR"),
        ]
        for key, value, expected in cases:
            message = self.error(f"[validators]\n{key} = {value}\n")
            self.assertIn(f"[validators] {key} = {expected}", message)

    def test_empty_listen_and_database(self) -> None:
        """An empty ``listen`` or ``database`` is an error saying what is expected."""
        self.assertIn(
            "[hooks] listen = '': expected a strports endpoint description",
            self.error("[hooks]\nlisten =\n"),
        )
        self.assertIn(
            "[hooks] database = '': expected a database URL: 'sqlite:PATH' or 'postgresql://...'",
            self.error("[hooks]\ndatabase =\n"),
        )

    def test_bad_subscribers(self) -> None:
        """
        Bad JSON, an empty value, a URL that is not http(s), a URL the recipient policy
        refuses and a bad pattern are errors naming ``[subscribers]`` and the pattern.
        """
        message = self.error('[subscribers]\nuser.created = {"url": \n')
        self.assertIn("[subscribers] user.created = '{\"url\":': not valid JSON (", message)
        self.assertIn("expected one or more URLs separated by spaces, or a JSON", message)
        message = self.error("[subscribers]\nuser.created =\n")
        self.assertIn("[subscribers] user.created = '': expected one or more URLs", message)
        message = self.error("[subscribers]\nuser.created = ftp://example.com/\n")
        self.assertIn("[subscribers] user.created = 'ftp://example.com/': ", message)
        self.assertIn("must use http or https", message)
        message = self.error("[subscribers]\nuser.created = http://127.0.0.1/hook\n")
        self.assertIn("[subscribers] user.created = 'http://127.0.0.1/hook': Refused", message)
        self.assertIn("block_internal_ips", message)
        message = self.error(
            '[subscribers]\nuser.created = {"url": "https://x.example/", "x": 1}\n'
        )
        self.assertIn("unknown subscriber field(s) ['x']", message)
        message = self.error("[subscribers]\nuser..created = https://x.example/\n")
        self.assertIn("[subscribers] user..created = 'https://x.example/': ", message)

    def test_allowed_static_subscriber(self) -> None:
        """A loopback subscriber is accepted once its network is allowed."""
        config = self.load(
            "[validators]\nports =\nallowed_networks = 127.0.0.0/8\n"
            f"[hooks]\nsecret = {SECRET}\n"
            "[subscribers]\nuser.created = http://127.0.0.1:8080/hook\n"
        )
        self.assertEqual(config.static_subscribers, {"user.created": "http://127.0.0.1:8080/hook"})

    def test_static_subscriber_needs_a_secret(self) -> None:
        """
        A static subscriber without an hmac_secret of its own, when [hooks] secret is
        empty, is an error naming the pattern and saying what to set (a secret made up at
        start would differ between restarts and nodes: nobody could verify); one with its
        own hmac_secret needs no [hooks] secret.
        """
        message = self.error("[subscribers]\nuser.created = https://a.example.com/e\n")
        self.assertIn("[subscribers] user.created has no hmac_secret of its own", message)
        self.assertIn("set [hooks] secret", message)
        config = self.load(
            '[subscribers]\nuser.created = {"url": "https://a.example.com/e", '
            f'"hmac_secret": "{SECRET}"}}\n'
        )
        self.assertEqual(config.static_subscribers["user.created"]["hmac_secret"], SECRET)  # type: ignore[index]

    def test_bad_listeners(self) -> None:
        """
        A listener without ``use``, with a ``use`` that is not a dotted name, an empty
        phase, an unknown ``match.*`` key or a bad ``match.kind`` is an error naming the
        section.
        """
        path = self.write("[listener:audit]\nlevel = info\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path, {})
        self.assertEqual(
            str(caught.exception),
            f"{path}: [listener:audit] has no 'use'; set use = the dotted name of a module "
            "with load_from_config(config, prefix), such as twisted_hooks.listeners.log",
        )
        self.assertIn(
            "[listener:audit] use = 'my listener': expected a dotted module name",
            self.error("[listener:audit]\nuse = my listener\n"),
        )
        self.assertIn(
            "[listener:audit] phase = '': expected a dispatcher phase",
            self.error("[listener:audit]\nuse = m\nphase =\n"),
        )
        self.assertIn(
            "unknown key 'match.event' in section [listener:audit]; a listener matches on "
            "match.name, match.kind and match.owner",
            self.error("[listener:audit]\nuse = m\nmatch.event = x\n"),
        )
        self.assertIn(
            "[listener:audit] match.kind = 'webhooks': expected webhook, operational, or "
            "nothing for every kind",
            self.error("[listener:audit]\nuse = m\nmatch.kind = webhooks\n"),
        )

    def test_strports_is_only_checked_for_text(self) -> None:
        """Any non-empty ``listen`` is kept as given: the tap parses the description."""
        self.assertEqual(
            self.load("[hooks]\nlisten = unix:/tmp/x.sock\n").listen, "unix:/tmp/x.sock"
        )

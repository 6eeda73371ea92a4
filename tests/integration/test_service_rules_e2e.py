"""
The real service (``twist hooks``) refuses the configuration values the settings classes
refuse, with the ranges written on their fields: one rule, read by both.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tests._service import run_failing
from twisted_hooks._fields import Rule, rule_of
from twisted_hooks.service.config import ServiceConfig
from twisted_hooks.webhooks import RetryPolicy, Settings


def _rule(cls: type, name: str) -> Rule:
    rule = rule_of(getattr(attrs.fields(cls), name))
    assert rule is not None
    return rule


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (Settings, "timeout"),
        (Settings, "circuit_failures"),
        (RetryPolicy, "jitter"),
        (ServiceConfig, "max_request_body"),
    ],
)
def test_out_of_range_value_stops_the_service(tmp_path: Path, cls: type, name: str) -> None:
    """A value just above a field's maximum, in the configuration file, stops the real
    service before it starts; the message names the file, the section and key the field's
    rule gives, and the maximum written on the field, which the class refuses too."""
    rule = _rule(cls, name)
    assert rule.section is not None and rule.key is not None and rule.maximum is not None
    high = rule.maximum if rule.below else rule.maximum + 1
    text = str(int(high)) if rule.integer else repr(float(high))
    config = tmp_path / "hooks.ini"
    config.write_text(f"[{rule.section}]\n{rule.key} = {text}\n", encoding="utf-8")
    result = run_failing(["--config", str(config), "--database", f"sqlite:{tmp_path}/db"])
    output = result.stdout + result.stderr
    assert result.returncode not in (0, None), output
    maximum = str(int(rule.maximum)) if rule.maximum == int(rule.maximum) else f"{rule.maximum:g}"
    assert f"{config}: [{rule.section}] {rule.key} = {text!r}: expected " in output, output
    assert maximum in output.split(f"{rule.key} = {text!r}: expected ")[1].splitlines()[0]
    with pytest.raises(ValueError, match=name):
        cls(**{name: int(high) if rule.integer else float(high)})

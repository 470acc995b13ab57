"""Flow 1 from the command line: register, list and unregister against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.config import load_config
from optibridge.sandbox.optimove import OptimoveSandbox, create_app
from optibridge.serving import serving


def test_listeners_register_list_unregister(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = OptimoveSandbox({"key-acme": "acme"})
    with serving(create_app(sandbox)) as running:
        path = tmp_path / "optibridge.toml"
        path.write_text(tomli_w.dumps({
            "server": {"public_url": "https://bridge.example", "signing_secret_env": "S"},
            "tenants": {"acme": {
                "optimove_url": running.url, "api_key_env": "K",
                "channels": {"504": {"type": "email", "address_attribute": "Email"},
                             "505": {"type": "sms", "address_attribute": "Phone"},
                             "511": {"type": "email", "address_attribute": "Email",
                                     "triggered": True}},
                "platform": {"base_url": "http://127.0.0.1:9", "api_key_env": "P",
                             "bounce_domain": 1}}}}))
        for name, value in {"S": "s" * 20, "K": "key-acme", "P": "p"}.items():
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        done = runner.invoke(app, ["listeners", "register", "-t", "acme", "-c", str(path)])
        assert done.exit_code == 0, done.output
        held = {(item.event_type_id, item.channel_id): item.listener_url
                for item in sandbox.listeners("acme")}
        assert set(held) == {(13, 504), (1, 504), (4, 504), (13, 505), (1, 505), (4, 505),
                             (11, 511)}
        token = load_config(path).listener_token("acme")
        assert held[(13, 504)] == f"https://bridge.example/listener/acme/{token}"
        assert held[(11, 511)] == f"https://bridge.example/triggered/acme/{token}"
        listed = runner.invoke(app, ["listeners", "list", "-t", "acme", "-c", str(path)])
        assert listed.exit_code == 0 and "511" in listed.output
        assert token not in listed.output  # the token is a secret: not printed
        gone = runner.invoke(app, ["listeners", "unregister", "-t", "acme", "-c", str(path)])
        assert gone.exit_code == 0, gone.output
        assert sandbox.listeners("acme") == []
        wrong = runner.invoke(app, ["listeners", "list", "-t", "nobody", "-c", str(path)])
        assert wrong.exit_code == 2 and "unknown tenant 'nobody'" in wrong.output
        monkeypatch.setenv("K", "key-revoked")  # a failed call ends the command: exit 1
        refused = runner.invoke(app, ["listeners", "list", "-t", "acme", "-c", str(path)])
        assert refused.exit_code == 1 and "error:" in refused.output, refused.output
        assert "Traceback" not in refused.output


def test_listeners_without_tenant_when_one_is_configured(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The README says -t may be left out with one tenant: register, list, unregister."""
    sandbox = OptimoveSandbox({"key-acme": "acme"})
    with serving(create_app(sandbox)) as running:
        path = tmp_path / "optibridge.toml"
        path.write_text(tomli_w.dumps({
            "server": {"public_url": "https://bridge.example", "signing_secret_env": "S"},
            "tenants": {"acme": {
                "optimove_url": running.url, "api_key_env": "K",
                "channels": {"504": {"type": "email", "address_attribute": "Email"}},
                "platform": {"base_url": "http://127.0.0.1:9", "api_key_env": "P",
                             "bounce_domain": 1}}}}))
        for name, value in {"S": "s" * 20, "K": "key-acme", "P": "p"}.items():
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        done = runner.invoke(app, ["listeners", "register", "-c", str(path)])
        assert done.exit_code == 0, done.output
        assert "registered EventTypeID 13 on channel 504" in done.output
        assert len(sandbox.listeners("acme")) == 3
        listed = runner.invoke(app, ["listeners", "list", "-c", str(path)])
        assert listed.exit_code == 0 and "504" in listed.output, listed.output
        gone = runner.invoke(app, ["listeners", "unregister", "-c", str(path)])
        assert gone.exit_code == 0, gone.output
        assert sandbox.listeners("acme") == []

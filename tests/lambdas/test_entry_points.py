"""Each function's Lambda entry point (the module's ``handler``, which serverless.yml names) is a shim: on the
container's first event it builds the function once with its composition root,
``build_handler(<Function>Settings.from_env(os.environ), AwsClients())``, and hands every event to it."""

from __future__ import annotations

import importlib

import pytest

from lambdas.adapters.clients import AwsClients
from local.pipeline import FUNCTIONS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("key", sorted(FUNCTIONS))
def test_the_entry_point_builds_its_function_once_from_the_environment(stack, key, monkeypatch):
    module_name, settings_type = FUNCTIONS[key]
    module = importlib.import_module(module_name)
    built = []

    def build_handler(settings, aws):
        built.append((settings, aws))
        return lambda event, context: {"handled": event, "by": len(built)}

    monkeypatch.setattr(module, "build_handler", build_handler)
    monkeypatch.setattr(module, "_handler", None)  # a new container
    environment = stack.lambda_environment(key)  # what Lambda sets (the deployed function's configuration)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert module.handler({"n": 1}, None) == {"handled": {"n": 1}, "by": 1}
    assert module.handler({"n": 2}, None) == {"handled": {"n": 2}, "by": 1}  # warm: not built again
    ((settings, aws),) = built
    assert settings == settings_type.from_env(environment)
    assert aws == AwsClients()  # boto3's defaults: the Lambda environment's region and credentials


def test_the_template_names_the_entry_points(stack):
    for key, (module_name, _) in FUNCTIONS.items():
        assert stack.functions[key].handler == module_name.replace(".", "/") + ".handler"

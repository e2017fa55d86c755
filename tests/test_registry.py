"""The registry records each builder's defaults in a run's config, so a later change of a
default does not change (or break) the model an old run rebuilds."""

from __future__ import annotations

import json

import pytest

from tractable.registry import MODELS, build_model, builder_defaults, model_config


@pytest.mark.parametrize("name", list(MODELS))
def test_every_entry_records_json_defaults(name: str) -> None:
    defaults = builder_defaults(name)
    assert defaults and json.loads(json.dumps(defaults)) == defaults


def test_recorded_defaults_win_over_the_builders_current_ones() -> None:
    config = model_config("maf", (2,), options={"hidden": [8]})
    assert config["defaults"]["transforms"] == 5 and config["options"] == {"hidden": [8]}
    # as if the run had been made when the default was 3 transforms
    old = {**config, "defaults": {**config["defaults"], "transforms": 3}}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    three = build_model(model_config("maf", (2,), options={"hidden": [8], "transforms": 3}))
    assert count(build_model(old)) == count(three) < count(build_model(config))
    # the user's own options still come first, and a default the builder no longer takes
    # (a removed option) is left out instead of failing the build
    mixed = {**old, "options": {"hidden": [8], "transforms": 5}}
    mixed["defaults"] = {**mixed["defaults"], "retired_option": 1}
    assert count(build_model(mixed)) == count(build_model(config))
    # a config from before defaults were recorded builds with the current defaults
    legacy = {k: v for k, v in config.items() if k != "defaults"}
    assert count(build_model(legacy)) == count(build_model(config))

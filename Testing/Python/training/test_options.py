"""Training options are declared once, on the TrainConfig fields (hrinet.training.options)."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from hrinet.core.errors import HRINetError
from hrinet.training.config import TrainConfig, setting_ranges
from hrinet.training.options import (
    CONFIG_OPTIONS,
    add_train_arguments,
    given_options,
    option_fields,
    train_argv,
)


def parser():
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    return p


def test_every_declared_field_is_an_option_with_its_default_in_the_help():
    actions = {a.dest: a for a in parser()._actions}
    for f in option_fields():
        assert f.name in actions and f.name in CONFIG_OPTIONS
        assert "default" in actions[f.name].help
        assert actions[f.name].default is None  # a resumed run tells given from stored


def test_ranges_come_from_the_same_declarations():
    declared = {f.name for f in fields(TrainConfig) if (f.metadata.get("range"))}
    assert set(setting_ranges()) == declared and {"lr", "ema", "augment"} <= declared


def test_the_arguments_a_program_builds_parse_back_to_the_same_settings():
    settings = dict(data=["a.nrrd", "b.nrrd"], variant="hrinet-flow", iterations=7, crop=64,
                    batch=2, lr=3e-5, val_factors=(2, 4), log_mse=True, init_weights="w.st",
                    checkpoint_minutes=2.0, augment=0.5)
    args = parser().parse_args(train_argv(**settings) + ["--out", "run"])
    assert given_options(args) == settings


def test_flow_only_settings_are_refused_by_the_other_variants_naming_the_option():
    flow_only = [f for f in fields(TrainConfig) if f.metadata.get("flow_only")]
    assert {"cross_view", "grad_weight", "energy_weight", "adversarial_weight",
            "adversarial_context", "augment"} <= {f.name for f in flow_only}
    # a setting that shapes another one is given with it
    partner = {"adversarial_context": {"adversarial_weight": 0.1}, "sharpen_max": {"augment": 0.25},
               "ssim_x2_weight": {"log_mse": True}}
    for f in flow_only:
        value = True if f.type in (bool, "bool") else (
            "bf16" if f.name == "precision" else f.default + 1 if f.name in ("workers", "samples_per_group") else 0.5)
        TrainConfig(data=["a.nrrd"], variant="hrinet-flow", **{f.name: value},
                    **partner.get(f.name, {})).check()
        with pytest.raises(HRINetError, match="flow models only"):
            TrainConfig(data=["a.nrrd"], variant="acai", **{f.name: value}).check()


def test_a_gap_under_two_is_refused_however_the_settings_were_built():
    """``--gaps`` parses only gaps of 2 or more; a program building the settings directly
    (``hrinet adapt``, a benchmark) meets the same bar: a gap of 1 has no slice to learn."""
    from hrinet.core.errors import HRINetError
    from hrinet.core.variants import gap_group_sizes
    from hrinet.training.config import TrainConfig

    with pytest.raises(HRINetError, match="include 1: .* give --gaps of 2 or more"):
        TrainConfig(data=["a.nrrd"], variant="hrinet-flow", group_sizes=[2, 3]).check()
    TrainConfig(data=["a.nrrd"], variant="hrinet-flow",
                group_sizes=gap_group_sizes((2, 3))).check()

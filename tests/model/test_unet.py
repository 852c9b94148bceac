"""The architecture: exact size, the common checkpoint layout, any input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.convert import config_from_state_dict, load_pth, unwrap_state_dict
from model.unet import UNet, UNetConfig, count_parameters

LAYOUT_KEYS = [  # what .pth files from the old service (the common PyTorch UNet layout) contain
    "inc.double_conv.0.weight",
    "inc.double_conv.1.weight",
    "inc.double_conv.1.bias",
    "down1.maxpool_conv.1.double_conv.0.weight",
    "down4.maxpool_conv.1.double_conv.4.bias",
    "up1.conv.double_conv.0.weight",
    "up1.conv.double_conv.4.bias",
    "up4.conv.double_conv.3.weight",
    "outc.conv.weight",
    "outc.conv.bias",
]


def test_reference_unet_has_exactly_7849601_parameters() -> None:
    assert count_parameters(UNet()) == 7_849_601


def test_state_dict_uses_the_common_layout() -> None:
    keys = set(UNet().state_dict())
    assert set(LAYOUT_KEYS) <= keys
    assert len(keys) == 56  # 9 DoubleConvs x (2 conv weights + 2 InstanceNorm weight/bias pairs) + outc's 2
    assert not any("running" in key for key in keys)  # InstanceNorm keeps no running statistics


@pytest.mark.parametrize(
    ("height", "width"),
    [(256, 256), (250, 333), (33, 47), (64, 200), (16, 32)],
)
def test_logits_have_the_input_size(height: int, width: int) -> None:
    model = UNet(UNetConfig(base_width=4)).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, height, width))
    assert logits.shape == (2, 1, height, width)


def test_reference_model_accepts_odd_sizes() -> None:
    with torch.no_grad():
        assert UNet().eval()(torch.randn(1, 3, 250, 333)).shape == (1, 1, 250, 333)


def test_config_round_trips_and_rebuilds_the_same_model() -> None:
    config = UNetConfig(base_width=8, dropouts=(0.5, 0.0, 0.0, 0.1))
    rebuilt = UNetConfig.from_dict(config.to_dict())
    assert rebuilt == config
    assert count_parameters(UNet(rebuilt)) == count_parameters(UNet(config))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: sd, id="bare"),
        pytest.param(lambda sd: {"state_dict": sd}, id="state_dict"),
        pytest.param(lambda sd: {"model_state_dict": sd, "epoch": 3}, id="model_state_dict"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="DataParallel"),
    ],
)
def test_pth_in_common_layout_loads_strictly(tmp_path: Path, wrap) -> None:
    # GIVEN weights saved the way the old service saved them
    original = UNet()
    path = tmp_path / "old.pth"
    torch.save(wrap(original.state_dict()), path)
    # WHEN they are loaded for conversion (strict=True inside)
    loaded = load_pth(path)
    # THEN every tensor came across
    for key, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_pth_with_a_missing_key_is_refused(tmp_path: Path) -> None:
    state = UNet().state_dict()
    del state["up1.conv.double_conv.4.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="up1.conv.double_conv.4.bias"):
        load_pth(tmp_path / "broken.pth")


def test_widths_are_read_off_the_weights() -> None:
    state = unwrap_state_dict({"state_dict": UNet(UNetConfig(base_width=16)).state_dict()})
    assert config_from_state_dict(state) == UNetConfig(base_width=16)

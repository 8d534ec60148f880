"""Torsos chosen from the observation: Nature-DQN where it fits, the small 2x2 stack for small
images, the multi-input torso for flat observations with an image part (Dict/Tuple)."""

from __future__ import annotations

import numpy as np
import pytest

from r2d2_state.networks import NATURE_MIN_SIZE, QNetworkConfig, build_q_network
from r2d2_state.state import reset_states


def _inputs(cfg: QNetworkConfig, batch: int, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shape = (batch, steps) + cfg.observation_shape
    obs = (rng.integers(0, 255, size=shape).astype(np.uint8) if cfg.input_dtype == "uint8"
           else rng.normal(size=shape).astype(np.float32))
    return {"observation": obs,
            "prev_action": rng.integers(-1, cfg.num_actions, size=(batch, steps)).astype(np.int32),
            "prev_reward": rng.normal(size=(batch, steps)).astype(np.float32),
            "valid": np.ones((batch, steps), np.float32)}


def _layer_names(model) -> set[str]:
    names = set()

    def walk(layer):
        names.add(layer.name)
        for sub in getattr(layer, "layers", []) or []:
            walk(sub)
        inner = getattr(layer, "layer", None)  # TimeDistributed
        if inner is not None:
            walk(inner)
        for attr in ("image_encoder",):
            if hasattr(layer, attr):
                walk(getattr(layer, attr))
    walk(model)
    return names


@pytest.mark.parametrize("shape, stack", [
    ((84, 84, 4), "nature_conv"), ((36, 40, 3), "nature_conv"), ((35, 64, 3), "small_conv"),
    ((7, 7, 3), "small_conv"), ((3, 3, 1), "small_conv"), ((1, 1, 2), "small_conv"), ((9, 5), "small_conv"),
])
def test_image_torso_is_chosen_from_the_shape(shape, stack):
    cfg = QNetworkConfig(observation_shape=shape, num_actions=3, lstm_units=(8,), head_units=8,
                         conv_dense_units=16)
    net = build_q_network(cfg, stateful=False)
    assert stack in _layer_names(net)
    x = _inputs(cfg, 2, 3)
    q = np.asarray(net({**x, "initial_h0": np.zeros((2, 8), np.float32),
                        "initial_c0": np.zeros((2, 8), np.float32)})[0])
    assert q.shape == (2, 3, 3) and np.isfinite(q).all()
    assert (min(shape[:2]) >= NATURE_MIN_SIZE) == (stack == "nature_conv")


def test_nature_weight_layout_is_unchanged():
    # conv 8x8x4x32, 4x4x32x64, 3x3x64x64, dense 3136x512, then LSTM and head: as before.
    cfg = QNetworkConfig(observation_shape=(84, 84, 4), num_actions=4, lstm_units=(16,), head_units=16)
    shapes = [tuple(w.shape) for w in build_q_network(cfg, stateful=False).get_weights()]
    assert shapes[:8] == [(8, 8, 4, 32), (32,), (4, 4, 32, 64), (64,), (3, 3, 64, 64), (64,), (3136, 512), (512,)]


def test_small_stack_is_minigrids():
    cfg = QNetworkConfig(observation_shape=(7, 7, 3), num_actions=7, lstm_units=(8,), head_units=8)
    shapes = [tuple(w.shape) for w in build_q_network(cfg, stateful=False).get_weights()]
    # 2x2 conv 16 (7 -> 6), max-pool (-> 3), 2x2 conv 32 (-> 2), 2x2 conv 64 (-> 1), LayerNorm 64.
    assert shapes[:8] == [(2, 2, 3, 16), (16,), (2, 2, 16, 32), (32,), (2, 2, 32, 64), (64,), (64,), (64,)]


def test_multi_input_torso_on_minigrid_layout():
    """151 uint8 = 7x7x3 image + direction one-hot 4: conv(image) ++ mlp(rest), stateful == stateless."""
    cfg = QNetworkConfig(observation_shape=(151,), num_actions=7, image_shape=(7, 7, 3),
                         observation_dtype="uint8", mlp_units=(16,), lstm_units=(8,), head_units=8)
    assert not cfg.is_image and cfg.input_dtype == "uint8"
    sf = build_q_network(cfg, stateful=True, batch_size=2)
    sl = build_q_network(cfg, stateful=False)
    sl.set_weights(sf.get_weights())
    shapes = [tuple(w.shape) for w in sf.get_weights()]
    assert (4, 16) in shapes and (2, 2, 3, 16) in shapes  # the rest's dense, the image's first conv
    x = _inputs(cfg, 2, 4)
    reset_states(sf, [[np.zeros((2, 8), np.float32)] * 2])
    q_sf = np.asarray(sf(x))
    q_sl = np.asarray(sl({**x, "initial_h0": np.zeros((2, 8), np.float32),
                          "initial_c0": np.zeros((2, 8), np.float32)})[0])
    np.testing.assert_allclose(q_sf, q_sl, atol=1e-5)
    # Both parts reach Q: changing only the image, or only the direction, changes it.
    for lo, hi in ((0, 147), (147, 151)):
        y = {k: v.copy() for k, v in x.items()}
        y["observation"][:, :, lo:hi] = 255 - y["observation"][:, :, lo:hi]
        q_y = np.asarray(sl({**y, "initial_h0": np.zeros((2, 8), np.float32),
                             "initial_c0": np.zeros((2, 8), np.float32)})[0])
        assert not np.allclose(q_y, q_sl)


def test_float_multi_input_and_image_only_layout():
    cfg = QNetworkConfig(observation_shape=(25,), num_actions=2, image_shape=(5, 5, 1), lstm_units=(8,),
                         head_units=8)
    assert cfg.input_dtype == "float32"
    net = build_q_network(cfg, stateful=True, batch_size=1)
    assert np.asarray(net(_inputs(cfg, 1, 2))).shape == (1, 2, 2)


@pytest.mark.parametrize("kwargs, words", [
    (dict(observation_shape=(10,), image_shape=(7, 7, 3)), "at least 147 entries"),
    (dict(observation_shape=(200,), image_shape=(7, 7)), "(H, W, C)"),
    (dict(observation_shape=(4,), observation_dtype="int8"), "observation_dtype"),
])
def test_config_validation(kwargs, words):
    with pytest.raises(ValueError) as info:
        QNetworkConfig(num_actions=2, **kwargs)
    assert words in str(info.value)


def test_image_codes_one_hot_each_channel():
    """Symbolic grids: channel k one-hot over image_codes[k] values, no 1/255 rescaling."""
    import keras

    from r2d2_state.networks import OneHotChannels

    layer = OneHotChannels((3, 2))
    out = np.asarray(layer(np.array([[[0, 1], [2, 0], [5, 1]]], np.uint8)))  # 5: outside 0..2
    np.testing.assert_array_equal(out, [[[1, 0, 0, 0, 1], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]])
    assert layer.compute_output_shape((None, 3, 2)) == (None, 3, 5)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, OneHotChannels) and clone.codes == (3, 2)


def test_image_codes_feed_the_conv_stack_one_hot_channels():
    """MiniGrid layout (3x3x3 view + direction): with image_codes the first conv sees the
    11 + 6 + 3 one-hot channels (a key and a ball are different channels, not the codes 5
    and 6 rescaled to 0.020 and 0.024); without, the 3 rescaled channels."""
    base = dict(observation_shape=(31,), num_actions=3, image_shape=(3, 3, 3), observation_dtype="uint8",
                mlp_units=(8,), lstm_units=(8,), head_units=8)
    coded = build_q_network(QNetworkConfig(image_codes=(11, 6, 3), **base), stateful=False)
    plain = build_q_network(QNetworkConfig(**base), stateful=False)
    assert (2, 2, 20, 16) in [tuple(w.shape) for w in coded.get_weights()]
    assert (2, 2, 3, 16) in [tuple(w.shape) for w in plain.get_weights()]
    assert "image_one_hot" in _layer_names(coded) and "image_one_hot" not in _layer_names(plain)
    x = _inputs(QNetworkConfig(**base), 2, 3)
    x["observation"][:, :, :27] %= 3
    zeros = {"initial_h0": np.zeros((2, 8), np.float32), "initial_c0": np.zeros((2, 8), np.float32)}
    assert np.isfinite(np.asarray(coded({**x, **zeros})[0])).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(observation_shape=(31,), image_shape=(3, 3, 3), image_codes=(11, 6)), "one per channel"),
    (dict(observation_shape=(7, 7, 3), image_codes=(11, 0, 3)), "ints >= 1"),
    (dict(observation_shape=(4,), image_codes=(11,)), "has no image"),
])
def test_image_codes_validation(kwargs, words):
    with pytest.raises(ValueError) as info:
        QNetworkConfig(num_actions=2, **kwargs)
    assert words in str(info.value)


def test_image_codes_round_trip_through_json():
    import json

    from agents.r2d2.config import R2D2Config

    config = R2D2Config(network=QNetworkConfig(image_codes=[11, 6, 3]))
    assert R2D2Config.from_dict(json.loads(config.to_json())).network.image_codes == (11, 6, 3)


def test_channels_first_frame_stack_is_the_transposed_channels_last_network():
    """[C, H, W] (Gymnasium's FrameStackObservation layout) gives the Q-values of the same weights on
    [H, W, C]: the transpose happens in the graph, the weights keep the Nature layout."""
    first = QNetworkConfig(observation_shape=(4, 84, 84), num_actions=6, lstm_units=(8,), head_units=8,
                           conv_dense_units=16, image_channels_first=True)
    last = QNetworkConfig(observation_shape=(84, 84, 4), num_actions=6, lstm_units=(8,), head_units=8,
                          conv_dense_units=16)
    assert first.channels_first and not last.channels_first and first.image_frame == last.image_frame == (84, 84, 4)
    net_first = build_q_network(first, stateful=False)
    net_last = build_q_network(last, stateful=False)
    assert [w.shape for w in net_first.get_weights()] == [w.shape for w in net_last.get_weights()]
    net_last.set_weights(net_first.get_weights())
    x = _inputs(first, 2, 3)
    state = {"initial_h0": np.zeros((2, 8), np.float32), "initial_c0": np.zeros((2, 8), np.float32)}
    q_first = np.asarray(net_first({**x, **state})[0])
    x_last = {**x, "observation": np.ascontiguousarray(np.moveaxis(x["observation"], 2, -1))}
    q_last = np.asarray(net_last({**x_last, **state})[0])
    assert q_first.shape == (2, 3, 6)
    np.testing.assert_allclose(q_first, q_last, rtol=1e-5, atol=1e-5)
    stateful = build_q_network(first, stateful=True, batch_size=2)
    stateful.set_weights(net_first.get_weights())
    np.testing.assert_allclose(np.asarray(stateful(x)), q_first, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, given, channels_first, frame", [
    ((4, 84, 84), None, True, (84, 84, 4)),     # decided by the shape: a frame stack, stack axis first
    ((84, 84, 4), None, False, (84, 84, 4)),
    ((7, 7, 3), None, False, (7, 7, 3)),
    ((32, 32, 32), None, False, (32, 32, 32)),  # both axes large: channels last, as before
    ((4, 84, 84), False, False, (4, 84, 84)),   # said explicitly
    ((3, 7, 7), True, True, (7, 7, 3)),
    ((9, 5), None, False, (9, 5, 1)),
])
def test_channels_first_is_decided_by_the_shape_unless_given(shape, given, channels_first, frame):
    cfg = QNetworkConfig(observation_shape=shape, num_actions=2, image_channels_first=given)
    assert cfg.channels_first == channels_first and cfg.image_frame == frame


def test_for_env_sets_image_channels_first_and_image_codes_count_its_channels():
    architecture = QNetworkConfig(lstm_units=(8,), head_units=8)
    cfg = architecture.for_env((3, 7, 7), 4, image=True, image_channels_first=True)
    assert cfg.image_channels_first and cfg.channels_first and "image_channels_first" in cfg.env_fields_set
    assert architecture.for_env((3, 7, 7), 4).image_channels_first is None  # for_env replaces every env field
    codes = QNetworkConfig(observation_shape=(3, 7, 7), num_actions=2, image_channels_first=True, image_codes=(11, 6, 3))
    net = build_q_network(codes, stateful=False)
    assert "image_one_hot" in _layer_names(net)


@pytest.mark.parametrize("kwargs, words", [
    (dict(observation_shape=(84,), image_channels_first=True), "needs a 3-D (C, H, W) image observation, got "
                                                               "observation_shape (84,)"),
    (dict(observation_shape=(9, 5), image_channels_first=True), "got observation_shape (9, 5)"),
    (dict(observation_shape=(151,), image_shape=(7, 7, 3), image_channels_first=True), "with image_shape (7, 7, 3)"),
    (dict(observation_shape=(4, 84, 84), image_channels_first="yes"), "must be True, False or None, got 'yes'"),
    (dict(observation_shape=(4, 84, 84), image_channels_first=True, image_codes=(2, 2)),
     "expected one per channel of the 4-channel image (84, 84, 4)"),
])
def test_image_channels_first_is_validated(kwargs, words):
    with pytest.raises(ValueError) as error:
        QNetworkConfig(num_actions=2, **kwargs)
    assert words in str(error.value)

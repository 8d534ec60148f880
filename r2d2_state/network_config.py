"""QNetworkConfig: the architecture of the recurrent Q-network, without TensorFlow.

A config module imports no framework, so a command line (``--help``), a JSON file or
another framework's agent can read and build it cheaply; :mod:`r2d2_state.networks`
builds the Keras model from it. The observation and action fields (:data:`ENV_FIELDS`)
describe the environment, the others the architecture: an agent's config leaves the env
fields ``None`` and fills them with :meth:`QNetworkConfig.for_env` once the environment is
known (docs/network.md).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["QNetworkConfig", "ENV_FIELDS", "MAX_CHANNELS_LAST"]

ENV_FIELDS = ("observation_shape", "num_actions", "image", "image_shape", "observation_dtype",
              "image_channels_first")
"""Fields that describe the environment, not the architecture (filled by :meth:`QNetworkConfig.for_env`)."""

MAX_CHANNELS_LAST = 16
"""Most channels of a channels-last image when the layout is decided by the shape (as ``envs.make``
lays images out): a 3-D image whose last axis is larger and whose first axis is not is channels first."""


@dataclasses.dataclass(frozen=True)
class QNetworkConfig:
    """Architecture of the recurrent Q-network."""

    observation_shape: tuple[int, ...] | None = None
    """Shape of one observation: (features,) for vectors, (H, W, C) or (H, W) for images; None: not known yet (from the env)."""
    num_actions: int | None = None
    """Size of the Discrete action space; None: not known yet (from the env)."""
    image: bool | None = None
    """Use the Nature-DQN conv torso; None: decided by the observation rank (>= 2 is an image)."""
    mlp_units: tuple[int, ...] = (64,)
    """Hidden layers of the MLP torso (vector observations)."""
    observation_scale: float | tuple[float, ...] = 1.0
    """Vector observations are multiplied by this before the MLP torso (images are scaled by 1/255 already): a fixed input normalisation for features much smaller or larger than 1; one factor, or one per feature."""
    conv_dense_units: int = 512
    """Width of the dense layer after the conv stack (image observations)."""
    lstm_units: tuple[int, ...] = (512,)
    """One entry per stacked LSTM layer."""
    head_units: int = 512
    """Hidden width of each dueling stream (value and advantage)."""
    use_prev_action: bool = True
    """Feed the previous action (one-hot) to the LSTM, as in R2D2."""
    use_prev_reward: bool = True
    """Feed the previous reward to the LSTM, as in R2D2."""
    image_shape: tuple[int, ...] | None = None
    """Flat observations (F,) whose first prod(image_shape) entries are an HxWxC image (a Dict / Tuple observation with an image part, see ``envs.observations``): multi-input torso. None: no such part."""
    observation_dtype: str | None = None
    """dtype of the observation input; None: uint8 for images, float32 otherwise."""
    image_channels_first: bool | None = None
    """The image observation is (C, H, W), channels first: Gymnasium's FrameStackObservation layout, which ``envs.make_env`` keeps for ``ALE/...`` ids (4x84x84). The network transposes it to (H, W, C) inside its graph, before the conv stack. None: decided by the shape (a 3-D image whose last axis has more than ``MAX_CHANNELS_LAST`` entries and whose first axis has at most that many is channels first)."""
    image_codes: tuple[int, ...] | None = None
    """The image holds symbolic codes, not intensities: channel k takes the values 0 .. image_codes[k] - 1 and is one-hot encoded before the conv stack (instead of the 1/255 rescaling), e.g. MiniGrid's object, colour and state codes (11, 6, 3). One entry per image channel; None: intensities."""

    def __post_init__(self) -> None:
        shape = None if self.observation_shape is None else tuple(int(d) for d in self.observation_shape)
        object.__setattr__(self, "observation_shape", shape)
        object.__setattr__(self, "mlp_units", tuple(int(u) for u in self.mlp_units))
        object.__setattr__(self, "lstm_units", tuple(int(u) for u in self.lstm_units))
        if self.image_channels_first is not None and not isinstance(self.image_channels_first, bool):
            raise ValueError(f"image_channels_first must be True, False or None, got {self.image_channels_first!r}")
        if self.image_shape is not None:
            image_shape = tuple(int(d) for d in self.image_shape)
            object.__setattr__(self, "image_shape", image_shape)
            if len(image_shape) != 3 or min(image_shape) <= 0:
                raise ValueError(f"image_shape must be (H, W, C) of positive ints, got {image_shape!r}")
            if shape is not None and (len(shape) != 1 or shape[0] < math.prod(image_shape)):
                raise ValueError(f"image_shape {image_shape!r} needs a flat observation_shape of at least "
                                 f"{math.prod(image_shape)} entries, got {shape!r}")
        if self.image_codes is not None:
            codes = tuple(self.image_codes)
            if not codes or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in codes):
                raise ValueError(f"image_codes must be a non-empty tuple of ints >= 1 (codes per image channel), "
                                 f"got {self.image_codes!r}")
            object.__setattr__(self, "image_codes", codes)
            frame = self.image_frame
            if frame is not None:
                channels = frame[2] if len(frame) == 3 else 1
                if len(codes) != channels:
                    raise ValueError(f"image_codes has {len(codes)} entries; expected one per channel of the "
                                     f"{channels}-channel image {frame!r}")
            elif shape is not None:
                raise ValueError(f"image_codes {codes!r} given, but the observation {shape!r} has no image")
        if self.observation_dtype is not None and self.observation_dtype not in ("uint8", "float32"):
            raise ValueError(f"observation_dtype must be 'uint8', 'float32' or None, got {self.observation_dtype!r}")
        if shape is not None and (not shape or any(d <= 0 for d in shape)):
            raise ValueError(f"observation_shape must be non-empty and positive, got {shape!r}")
        if self.num_actions is not None and self.num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {self.num_actions!r}")
        if not self.lstm_units or any(u <= 0 for u in self.lstm_units):
            raise ValueError(f"lstm_units must be a non-empty tuple of positive ints, got {self.lstm_units!r}")
        if any(u <= 0 for u in self.mlp_units):
            raise ValueError(f"mlp_units must be positive ints, got {self.mlp_units!r}")
        scale = self.observation_scale
        if isinstance(scale, (list, tuple)):
            scale = tuple(scale)
            object.__setattr__(self, "observation_scale", scale)
        factors = scale if isinstance(scale, tuple) else (scale,)
        if not factors or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f > 0
                                  for f in factors):
            raise ValueError(f"observation_scale must be a finite number > 0 or a tuple of them (one per feature), "
                             f"got {self.observation_scale!r}")
        if isinstance(scale, tuple) and shape is not None and (len(shape) != 1 or shape[0] != len(scale)):
            raise ValueError(f"observation_scale has {len(scale)} factors; expected one per feature of the "
                             f"vector observation_shape {shape!r}")
        if self.head_units < 1 or self.conv_dense_units < 1:
            raise ValueError(f"head_units and conv_dense_units must be >= 1, got {self.head_units!r} and "
                             f"{self.conv_dense_units!r}")
        if shape is not None and self.is_image and len(shape) not in (2, 3):
            raise ValueError(f"image observations must be (H, W) or (H, W, C) (or (C, H, W) channels first), "
                             f"got {shape!r}")
        if self.image_channels_first and (self.image_shape is not None
                                          or (shape is not None and not (self.is_image and len(shape) == 3))):
            raise ValueError("image_channels_first=True needs a 3-D (C, H, W) image observation, got observation_shape "
                             f"{shape!r}" + (f" with image_shape {self.image_shape!r}" if self.image_shape else ""))

    @property
    def is_image(self) -> bool:
        if self.image_shape is not None:
            return False
        if self.image is not None:
            return self.image
        return self.observation_shape is not None and len(self.observation_shape) >= 2

    @property
    def channels_first(self) -> bool:
        """The image observation is (C, H, W) (``image_channels_first``, or decided by the shape)."""
        shape = self.observation_shape
        if not self.is_image or shape is None or len(shape) != 3:
            return False
        if self.image_channels_first is not None:
            return self.image_channels_first
        return shape[-1] > MAX_CHANNELS_LAST >= shape[0]

    @property
    def image_frame(self) -> tuple[int, ...] | None:
        """(H, W, C) of the image the conv stack sees (the image part, or the observation
        transposed to channels last; (H, W) images get C = 1), else None."""
        if self.image_shape is not None:
            return self.image_shape
        shape = self.observation_shape
        if shape is None or not self.is_image or len(shape) not in (2, 3):
            return None
        if len(shape) == 2:
            return shape + (1,)
        return (shape[1], shape[2], shape[0]) if self.channels_first else shape

    @property
    def input_dtype(self) -> str:
        """dtype of the ``observation`` input (and of what the actor feeds it)."""
        return self.observation_dtype or ("uint8" if self.is_image else "float32")

    @property
    def env_fields_set(self) -> list[str]:
        """The :data:`ENV_FIELDS` that are not None."""
        return [name for name in ENV_FIELDS if getattr(self, name) is not None]

    def for_env(self, observation_shape: tuple[int, ...], num_actions: int, *, image: bool | None = None,
                image_shape: tuple[int, ...] | None = None, observation_dtype: str | None = None,
                image_channels_first: bool | None = None) -> "QNetworkConfig":
        """This architecture on an environment's observations and actions (replaces every env field)."""
        return dataclasses.replace(self, observation_shape=observation_shape, num_actions=num_actions, image=image,
                                   image_shape=image_shape, observation_dtype=observation_dtype,
                                   image_channels_first=image_channels_first)

    def require_env(self) -> None:
        """Raise unless the observation shape and the number of actions are known.

        Raises:
          ValueError: naming the missing fields and how to fill them.
        """
        missing = [name for name in ("observation_shape", "num_actions") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"QNetworkConfig.{' and '.join(missing)} is None: a network needs the environment's "
                             "observation shape and number of actions (QNetworkConfig.for_env(...))")

"""R2D2Policy: a trained agent acting in the user's own loop, numpy in and out.

Load the trained Q-network of a run (or of one of its checkpoints) and call
:meth:`R2D2Policy.predict` the way Stable-Baselines3 users call ``RecurrentPPO.predict``:
batched over envs, the recurrent state carried from call to call by the caller. Nothing
else is built: no replay, learner, optimizer or environment. Each row is fed exactly what
:class:`agents.r2d2.actor.R2D2Actor` feeds it; the loop, the previous reward and the
episode boundaries under NEXT_STEP autoreset: docs/policy.md.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

import numpy as np

from agents.r2d2.run_dir import read_env_json

__all__ = ["PolicyState", "R2D2Policy"]


class PolicyState(NamedTuple):
    """The recurrent state of N env rows between two ``predict`` calls (numpy only).

    Treat it as opaque: pass back what ``predict`` returned (``None`` for fresh rows).
    """

    lstm: tuple[tuple[np.ndarray, np.ndarray], ...]
    """Per LSTM layer ``(h, c)``, each float32 [N, units]: the state after the last step."""
    prev_action: np.ndarray
    """int32 [N]: the actions the last ``predict`` returned (-1 before any)."""


class R2D2Policy:
    """The greedy (or epsilon-greedy) policy of a trained R2D2 Q-network.

    Build it with :meth:`load` from a run directory or a checkpoint directory; the
    constructor takes a network config and weights (``get_weights`` order of
    :func:`r2d2_state.networks.build_q_network`).

    Args:
      network_config: the architecture, with the env's fields filled in
        (``QNetworkConfig.for_env``).
      weights: the trained network's weights (a checkpoint's ``weights.npz``).
      epsilon: exploration rate of ``predict(..., deterministic=False)`` without its own
        ``epsilon`` (``load`` uses the run's ``r2d2.eval_epsilon``).
      seed: seeds the exploration draws (numpy ``default_rng``, drawn as the actor draws).
      backend: ``"auto"`` (numpy for vector torsos, as the actor), ``"numpy"`` or ``"tf"``.

    Attributes:
      network: the stateless Keras model (any batch size; initial state in, final state out).
      config: the run's TrainConfig (None when built from a network config).
      checkpoint: the checkpoint name the weights come from (None likewise).
      num_actions, observation_shape, observation_dtype: what ``predict`` expects and returns.
    """

    def __init__(self, network_config: Any, weights: Sequence[np.ndarray], *, epsilon: float = 0.0,
                 seed: int | None = None, backend: str = "auto") -> None:
        import tensorflow as tf

        from agents.r2d2.config import ACTOR_BACKENDS
        from agents.r2d2.numpy_step import NumpyQStep, numpy_step_unsupported
        from r2d2_state.networks import QNetworkConfig, build_q_network

        if not isinstance(network_config, QNetworkConfig):
            raise TypeError(f"network_config must be a QNetworkConfig, got {type(network_config).__name__}")
        if backend not in ACTOR_BACKENDS:
            raise ValueError(f"backend must be one of {ACTOR_BACKENDS}, got {backend!r}")
        unsupported = numpy_step_unsupported(network_config)
        if backend == "numpy" and unsupported:
            raise ValueError(f"backend='numpy' does not apply here: {unsupported}")
        self.epsilon = _checked_epsilon(epsilon)
        self.network_config = network_config
        self.num_actions = int(network_config.num_actions)
        self.observation_shape = tuple(int(d) for d in network_config.observation_shape)
        self.observation_dtype = np.dtype(network_config.input_dtype)
        self.lstm_units = tuple(int(u) for u in network_config.lstm_units)
        self.network = build_q_network(network_config, stateful=False, name="policy_q_network")
        self.network.set_weights(list(weights))  # ValueError on weights of another architecture
        self.backend = "numpy" if backend == "numpy" or (backend == "auto" and unsupported is None) else "tf"
        self.config: Any = None
        self.checkpoint: str | None = None
        self.run_dir: str | None = None
        self._rng = np.random.default_rng(seed)
        self._numpy_step = NumpyQStep(self.network, network_config) if self.backend == "numpy" else None
        # Batch None: one trace serves every number of envs.
        signature = [tf.TensorSpec((None,) + self.observation_shape, tf.as_dtype(self.observation_dtype)),
                     tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32)]
        signature += [tf.TensorSpec((None, units), tf.float32) for units in self.lstm_units for _ in "hc"]
        self._tf_step = tf.function(self._graph_step, input_signature=signature, autograph=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | os.PathLike, checkpoint: str | None = None, *, seed: int | None = None,
             backend: str | None = None, epsilon: float | None = None) -> "R2D2Policy":
        """The policy of a run directory (``scripts/train.py``'s) or of one of its checkpoints.

        Args:
          path: ``RUN_DIR`` or ``RUN_DIR/checkpoints/ckpt-...``.
          checkpoint: a checkpoint name in ``RUN_DIR/checkpoints`` (default: the latest, or
            the one ``path`` names).
          seed: seeds the exploration draws of ``deterministic=False``.
          backend: as in the constructor (default: the run's ``r2d2.actor_backend``).
          epsilon: default epsilon of ``deterministic=False`` (default: the run's
            ``r2d2.eval_epsilon``).

        The observation and action spaces come from ``RUN_DIR/env.json`` (no env is made);
        a run without one makes the env once to read them.

        Raises:
          FileNotFoundError: ``path`` is neither a run directory nor a checkpoint in one.
          ValueError: ``path`` is a checkpoint and ``checkpoint`` names another one.
          CheckpointError: the checkpoint is missing, corrupt or truncated.
          ConfigurationError: ``config.json`` or ``env.json`` is invalid, or the weights do not
            fit the network they describe.
        """
        from agents.r2d2.checkpoint import CheckpointManager
        from agents.r2d2.evaluation import network_config_for
        from agents.r2d2.train_config import ConfigurationError, TrainConfig

        run_dir, checkpoint = _resolve_run_dir(os.fspath(path), checkpoint)
        config = TrainConfig.from_json_file(os.path.join(run_dir, "config.json"))
        weights, ckpt = CheckpointManager(run_dir).load_weights(checkpoint)
        description = _description(run_dir, config)
        try:
            policy = cls(network_config_for(config, description), weights, seed=seed,
                         epsilon=config.r2d2.eval_epsilon if epsilon is None else epsilon,
                         backend=config.r2d2.actor_backend if backend is None else backend)
        except (ValueError, TypeError) as error:
            raise ConfigurationError(f"cannot build the policy of {run_dir!r} from checkpoint {ckpt.name} "
                                     f"({type(error).__name__}: {error})") from error
        policy.config, policy.checkpoint, policy.run_dir = config, ckpt.name, run_dir
        return policy

    def make_vector_env(self, num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> Any:
        """The run's environment as ``envs.make_vector_env`` makes it (NEXT_STEP autoreset),
        checked against ``RUN_DIR/env.json``; ``kwargs`` go to ``make_vector_env``.

        Raises:
          ValueError: the policy was not loaded from a run, or the env differs from env.json.
        """
        import envs

        if self.config is None:
            raise ValueError("make_vector_env needs a policy loaded from a run (R2D2Policy.load)")
        config = self.config
        vec = envs.make_vector_env(config.env_id, num_envs, seed=seed, **config.env_make_kwargs, **kwargs)
        record = read_env_json(self.run_dir)
        if record is not None:
            try:
                envs.check_env_record(record, envs.env_record(vec, config.env_id, config.env_packages,
                                                              config.env_kwargs, config.env_actions))
            except ValueError:
                vec.close()
                raise
        return vec

    # ------------------------------------------------------------------ acting

    def initial_state(self, num_envs: int) -> PolicyState:
        """Zeros for ``num_envs`` rows (what ``state=None`` means)."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        n = int(num_envs)
        return PolicyState(tuple((np.zeros((n, u), np.float32), np.zeros((n, u), np.float32))
                                 for u in self.lstm_units), np.full(n, -1, np.int32))

    def q_values(self, observation: Any, state: PolicyState | None = None, episode_start: Any = None,
                 reward: Any = None) -> tuple[np.ndarray, PolicyState]:
        """Q-values of one step for N env rows and the state after it (arguments as :meth:`predict`).

        Returns:
          ``(q, state)``: q float32 [N, num_actions]; ``state.prev_action`` is left as it was
          (``predict`` sets it to the actions it chooses).
        """
        obs = self._checked_observation(observation)
        n = obs.shape[0]
        starts = self._checked_episode_start(episode_start, n)
        fresh = np.ones(n, bool) if state is None else starts
        state = self.initial_state(n) if state is None else self._checked_state(state, n)
        prev_reward = self._prev_reward(reward, fresh, n)
        keep = ~fresh[:, None]
        lstm = [[np.where(keep, s, np.float32(0.0)).astype(np.float32) for s in layer] for layer in state.lstm]
        prev_action = np.where(fresh, -1, state.prev_action).astype(np.int32)
        if self._numpy_step is not None:
            q, after = self._numpy_step(obs, prev_action, prev_reward, lstm)
        else:
            flat = self._tf_step(obs, prev_action, prev_reward, *[s for layer in lstm for s in layer])
            q, rest = flat[0].numpy(), [t.numpy() for t in flat[1:]]
            after = [rest[2 * i:2 * i + 2] for i in range(len(self.lstm_units))]
        after_state = PolicyState(tuple((np.asarray(h, np.float32), np.asarray(c, np.float32)) for h, c in after),
                                  prev_action)
        return np.asarray(q, np.float32), after_state

    def predict(self, observation: Any, state: PolicyState | None = None, episode_start: Any = None,
                deterministic: bool = True, *, reward: Any = None,
                epsilon: float | None = None) -> tuple[np.ndarray, PolicyState]:
        """Actions for N env rows, and the state to pass to the next call.

        Args:
          observation: [N, *observation_shape] as the run's env (``envs.make_vector_env``)
            returns it: float vectors, or uint8 images.
          state: what the previous call returned; None: fresh rows (zeros).
          episode_start: bool [N], rows whose observation starts an episode (zero state,
            previous action -1, previous reward 0); None: none (every row, if ``state`` is None).
          deterministic: greedy actions; False: epsilon-greedy with ``epsilon``, else the
            policy's ``epsilon`` (the run's ``eval_epsilon``).
          reward: float [N], the rewards ``env.step`` returned for the previous call's actions;
            needed on rows that continue an episode when the network takes the previous reward.
          epsilon: exploration rate in [0, 1] for ``deterministic=False``.

        Returns:
          ``(actions, state)``: int32 [N] and the new :class:`PolicyState`; the arguments are
          not modified.

        Raises:
          ValueError / TypeError: naming the argument, its shape or value and what was
            expected; nothing is changed.
        """
        eps = self.epsilon if epsilon is None else _checked_epsilon(epsilon)
        q, after = self.q_values(observation, state, episode_start, reward)
        greedy = np.argmax(q, axis=1).astype(np.int32)
        if deterministic:
            actions = greedy
        else:  # drawn as R2D2Actor draws: the same seed gives the same actions
            n = q.shape[0]
            explore = self._rng.random(n) < eps
            random = self._rng.integers(self.num_actions, size=n)
            actions = np.where(explore, random, greedy).astype(np.int32)
        return actions, after._replace(prev_action=actions.copy())

    # ------------------------------------------------------------------ export

    def export(self, path: str | os.PathLike, **kwargs: Any) -> str:
        """Write the Q-network as a TensorFlow SavedModel (:func:`agents.r2d2.export.export_saved_model`)."""
        from agents.r2d2.export import export_saved_model

        return export_saved_model(self, path, **kwargs)

    # ------------------------------------------------------------------ internals

    def _graph_step(self, observation, prev_action, prev_reward, *states):
        """[N, *obs], int32 [N], float32 [N], (h, c) per layer [N, units] -> [q [N, A], h0, c0, ...]."""
        import tensorflow as tf

        inputs = {"observation": observation[:, None], "prev_action": prev_action[:, None],
                  "prev_reward": prev_reward[:, None], "valid": tf.ones_like(prev_reward)[:, None]}
        for i in range(len(self.lstm_units)):
            inputs[f"initial_h{i}"], inputs[f"initial_c{i}"] = states[2 * i], states[2 * i + 1]
        q, finals = self.network(inputs, training=False)
        return [q[:, 0]] + [t for layer in finals for t in layer]

    def _checked_observation(self, observation: Any) -> np.ndarray:
        obs = np.asarray(observation)
        if obs.ndim != 1 + len(self.observation_shape) or obs.shape[1:] != self.observation_shape or obs.shape[0] < 1:
            raise ValueError(f"observation must have shape [N, *{self.observation_shape}] (N >= 1 envs), "
                             f"got {obs.shape!r}")
        if self.observation_dtype == np.uint8 and obs.dtype != np.uint8:
            raise TypeError(f"uint8 (image) observations must be uint8, got dtype {obs.dtype}")
        if not (np.issubdtype(obs.dtype, np.number) or obs.dtype == bool):
            raise TypeError(f"observation must be numeric, got dtype {obs.dtype}")
        return obs.astype(self.observation_dtype, copy=False)

    def _checked_state(self, state: Any, n: int) -> PolicyState:
        if not isinstance(state, PolicyState):
            raise TypeError(f"state must be None or the PolicyState a previous predict returned, "
                            f"got {type(state).__name__}")
        if len(state.lstm) != len(self.lstm_units):
            raise ValueError(f"state has {len(state.lstm)} LSTM layers, this network {len(self.lstm_units)}")
        for i, (layer, units) in enumerate(zip(state.lstm, self.lstm_units)):
            for name, array in zip("hc", layer):
                if np.shape(array) != (n, units):
                    raise ValueError(f"state's {name} of LSTM layer {i} must have shape {(n, units)} "
                                     f"(N = {n} observations), got {np.shape(array)!r}")
        prev = np.asarray(state.prev_action)
        if prev.shape != (n,):
            raise ValueError(f"state.prev_action must have shape ({n},), got {prev.shape!r}")
        if not np.issubdtype(prev.dtype, np.integer) or np.any((prev < -1) | (prev >= self.num_actions)):
            raise ValueError(f"state.prev_action must be ints in [-1, {self.num_actions}), got {prev.tolist()!r}")
        return state

    @staticmethod
    def _checked_episode_start(episode_start: Any, n: int) -> np.ndarray:
        if episode_start is None:
            return np.zeros(n, bool)
        starts = np.asarray(episode_start)
        if starts.shape != (n,):
            raise ValueError(f"episode_start must have shape ({n},) (one per env), got {starts.shape!r}")
        if not (starts.dtype == bool or np.issubdtype(starts.dtype, np.integer)) or not np.isin(starts, (0, 1)).all():
            raise ValueError(f"episode_start must be booleans, got {starts.tolist()!r}")
        return starts.astype(bool)

    def _prev_reward(self, reward: Any, fresh: np.ndarray, n: int) -> np.ndarray:
        if reward is None:
            if self.network_config.use_prev_reward and not fresh.all():
                raise ValueError("this network takes the previous reward: pass reward= (float [N], what env.step "
                                 f"returned for the previous actions) for the rows {np.flatnonzero(~fresh).tolist()} "
                                 "that continue an episode")
            return np.zeros(n, np.float32)
        values = np.asarray(reward)
        if values.shape != (n,):
            raise ValueError(f"reward must have shape ({n},) (one per env), got {values.shape!r}")
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
            raise TypeError(f"reward must be numeric, got dtype {values.dtype}")
        values = values.astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"reward must be finite, got {values.tolist()!r}")
        return np.where(fresh, np.float32(0.0), values).astype(np.float32)


def _checked_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon must be a number in [0, 1], got {epsilon!r}")
    return float(epsilon)


def _resolve_run_dir(path: str, checkpoint: str | None) -> tuple[str, str | None]:
    """(run directory, checkpoint name or None) of a run or checkpoint path."""
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, "config.json")):
        return path, checkpoint
    parent = os.path.dirname(path)
    run_dir = os.path.dirname(parent)
    if os.path.basename(parent) == "checkpoints" and os.path.isfile(os.path.join(run_dir, "config.json")):
        name = os.path.basename(path)
        if checkpoint is not None and checkpoint != name:
            raise ValueError(f"{path!r} is checkpoint {name!r}, but checkpoint={checkpoint!r} was also given")
        return run_dir, name
    raise FileNotFoundError(f"{path!r} is neither a run directory (with config.json) nor a checkpoint "
                            "directory RUN_DIR/checkpoints/ckpt-...")


def _description(run_dir: str, config: Any) -> Any:
    """The env's ``EnvDescription``: from env.json, or by making the env once."""
    import envs
    from agents.r2d2.train_config import ConfigurationError

    record = read_env_json(run_dir)
    if record is None:
        vec = envs.make_vector_env(config.env_id, 1, **config.env_make_kwargs)
        try:
            return envs.describe_env(vec)
        finally:
            vec.close()
    try:
        shape = tuple(int(d) for d in record["observation_shape"])
        dtype = np.dtype(record["observation_dtype"])
        image_shape = None if record.get("image_shape") is None else tuple(int(d) for d in record["image_shape"])
        num_actions = int(record["num_actions"])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigurationError(f"{os.path.join(run_dir, 'env.json')!r} is not an env record "
                                 f"({type(error).__name__}: {error})") from None
    # As describe_env decides it: uint8 HxWxC with a plausible channel count.
    is_image = dtype == np.uint8 and len(shape) == 3 and 1 <= shape[-1] <= 16
    return envs.EnvDescription(obs_shape=shape, obs_dtype=dtype, is_image=is_image, num_actions=num_actions,
                               reward_threshold=None, max_episode_steps=None, env_id=record.get("spec_id"),
                               image_shape=image_shape)

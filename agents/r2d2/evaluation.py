"""Evaluation of an R2D2 policy and the learning-curve picture of a run.

- :func:`run_episodes`: N complete episodes with an :class:`R2D2Actor` (greedy or a given
  epsilon); every env runs a fixed quota of episodes, so short episodes are not
  over-represented in the mean.
- :func:`evaluate_run`: load a run's latest (verified) checkpoint, evaluate, write
  ``eval.json`` and ``learning_curve.png``, optionally a GIF (``scripts/evaluate.py``).
- :func:`plot_learning_curve`: ``metrics.csv`` -> PNG (matplotlib, Agg backend).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Sequence

import numpy as np

from agents.r2d2.acting import Acting
from r2d2_state.files import atomic_write, atomic_write_text

__all__ = ["EvalResult", "Evaluator", "run_episodes", "evaluate_run", "plot_learning_curve", "network_config_for"]


@dataclasses.dataclass(frozen=True)
class EvalResult:
    returns: tuple[float, ...]
    """Return of every evaluated episode."""
    lengths: tuple[int, ...]
    """Length (transitions) of every evaluated episode."""
    epsilon: float
    """Exploration rate used."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def summary(self) -> str:
        r = np.asarray(self.returns)
        return (f"return {r.mean():.3f} +- {r.std():.3f} over {r.size} episodes "
                f"(min {r.min():.3f}, max {r.max():.3f}; mean length {np.mean(self.lengths):.1f}; "
                f"epsilon {self.epsilon})")

    def to_dict(self) -> dict[str, Any]:
        r = np.asarray(self.returns)
        return {"episodes": int(r.size), "mean": float(r.mean()), "std": float(r.std()),
                "min": float(r.min()), "max": float(r.max()),
                "mean_length": float(np.mean(self.lengths)), "epsilon": self.epsilon,
                "returns": [float(x) for x in r], "lengths": [int(x) for x in self.lengths]}


def network_config_for(config: Any, description: Any):
    """The TrainConfig's network architecture on an env described by ``envs.describe_env``."""
    return config.r2d2.network.for_env(description.obs_shape, description.num_actions, image=description.is_image,
                                       image_shape=description.image_shape,
                                       observation_dtype=np.dtype(description.obs_dtype).name)


def run_episodes(actor: Any, vec_env: Any, episodes: int, seed: int | None = None,
                 max_steps: int = 10_000_000, frames: list | None = None) -> tuple[list[float], list[int]]:
    """Run ``episodes`` complete episodes with ``actor`` on ``vec_env`` (NEXT_STEP autoreset).

    Env i runs ``episodes // N`` (+1 for the first ``episodes % N``) episodes; envs past
    their quota keep stepping (the batch is fixed) but are not counted.
    ``frames``: if given and the env renders, the first env's frames of its first
    episode are appended (for a GIF).
    """
    n = vec_env.num_envs
    quota = np.full(n, episodes // n) + (np.arange(n) < episodes % n)
    done = np.zeros(n, np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    acting = Acting(vec_env, actor, seed=seed)
    acting.begin()
    for _ in range(max_steps):
        if (done >= quota).all():
            break
        if frames is not None and done[0] == 0:
            frame = _render_first(vec_env)
            if frame is not None:
                frames.append(frame)
        finished, finished_returns, finished_lengths = acting.step()
        for i, ep_return, ep_length in zip(finished, finished_returns, finished_lengths):
            if done[i] < quota[i]:
                returns.append(ep_return)
                lengths.append(ep_length)
                done[i] += 1
    else:
        raise RuntimeError(f"evaluation did not finish {episodes} episodes in {max_steps} steps")
    return returns, lengths


class Evaluator:
    """The periodic evaluation of a training run: greedy (``eval_epsilon``) episodes on
    ``eval_num_envs`` envs of its own, with the weights it is given.

    ``evaluator(weights, env_steps)`` returns the returns of ``eval_episodes`` episodes; the
    envs reset from a seed derived from the run's seed and ``env_steps``, so an evaluation is
    the same whenever it is repeated at the same point.
    """

    def __init__(self, config: Any, network_config: Any) -> None:
        import envs
        from agents.r2d2.actor import R2D2Actor

        self.config = config
        self.envs = envs.make_vector_env(config.env_id, config.eval_num_envs, **config.env_make_kwargs)
        self.actor = R2D2Actor(network_config, config.eval_num_envs, config.r2d2.eval_epsilon, seed=config.seed + 1,
                               backend=config.r2d2.actor_backend)

    def __call__(self, weights: list[np.ndarray], env_steps: int) -> list[float]:
        self.actor.set_weights(weights)
        seed = int(np.random.SeedSequence([self.config.seed, 7, env_steps]).generate_state(1)[0] % 2**31)
        returns, _ = run_episodes(self.actor, self.envs, self.config.eval_episodes, seed=seed)
        return returns

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None


def _render_first(vec_env: Any) -> np.ndarray | None:
    try:
        frames = vec_env.render()
    except Exception:  # noqa: BLE001 - rendering is optional
        return None
    if frames is None:
        return None
    frame = frames[0] if isinstance(frames, (tuple, list)) else frames
    return np.asarray(frame) if frame is not None else None


def evaluate_weights(config: Any, weights: list[np.ndarray], episodes: int, epsilon: float = 0.0,
                     num_envs: int = 1, seed: int = 12345, video_path: str | None = None,
                     env_json: dict[str, Any] | None = None) -> tuple[EvalResult, str]:
    """Evaluate ``weights`` on ``config.env_id``; returns (result, video message).

    ``env_json``: the training run's env record (``RUN_DIR/env.json``); the rebuilt env must
    match it (ValueError naming the difference otherwise).
    """
    import envs
    from agents.r2d2.actor import R2D2Actor

    render_kwargs = {"render_mode": "rgb_array"} if video_path else {}
    message = ""
    try:
        # Sync vectorization when recording: native vector envs may not render.
        vec = envs.make_vector_env(config.env_id, num_envs, seed=seed,
                                   vectorization="sync" if video_path else "auto",
                                   **config.env_make_kwargs, **render_kwargs)
    except Exception as error:  # noqa: BLE001 - fall back to no video, say why
        if not video_path:
            raise
        message = f"no video: {config.env_id!r} cannot render rgb_array ({type(error).__name__}: {error})"
        video_path = None
        vec = envs.make_vector_env(config.env_id, num_envs, seed=seed, **config.env_make_kwargs)
    try:
        description = envs.describe_env(vec)
        if env_json is not None:
            envs.check_env_record(env_json, envs.env_record(vec, config.env_id, config.env_packages,
                                                            config.env_kwargs, config.env_actions))
        actor = R2D2Actor(network_config_for(config, description), num_envs, epsilon, seed=seed,
                          backend=config.r2d2.actor_backend)
        actor.set_weights(weights)
        frames: list | None = [] if video_path else None
        returns, lengths = run_episodes(actor, vec, episodes, seed=seed, frames=frames)
    finally:
        vec.close()
    if video_path:
        if frames:
            _write_gif(frames, video_path)
            message = f"video: {video_path} ({len(frames)} frames)"
        else:
            message = f"no video: {config.env_id!r} returned no rgb_array frames"
    return EvalResult(tuple(returns), tuple(lengths), float(epsilon)), message


def _write_gif(frames: Sequence[np.ndarray], path: str, fps: int = 30) -> None:
    from PIL import Image  # a matplotlib dependency

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    atomic_write(path, lambda file: images[0].save(file, format="GIF", save_all=True, append_images=images[1:],
                                                   duration=int(1000 / fps), loop=0), binary=True)


def evaluate_run(run_dir: str, episodes: int = 100, epsilon: float = 0.0, num_envs: int = 1,
                 checkpoint: str | None = None, video: bool = False, seed: int = 12345) -> dict[str, Any]:
    """Evaluate the run's checkpoint; write ``eval.json`` and ``learning_curve.png``.

    Returns the JSON written (with ``eval_json``, ``learning_curve`` and ``video`` paths).
    The evaluation is written even when ``metrics.csv`` is missing or broken: then
    ``learning_curve`` is None and ``learning_curve_message`` says why.

    Raises:
      CheckpointError: the checkpoint is missing or corrupt.
      FileNotFoundError: ``run_dir`` has no ``config.json``.
      ConfigurationError: ``config.json`` is invalid or differs from the checkpoint's
        config outside the budget and output fields, ``num_envs < 1``, the environment
        cannot be made or the weights do not fit its network.
    """
    from agents.r2d2.checkpoint import CheckpointManager, check_config_matches_checkpoint
    from agents.r2d2.run_dir import read_env_json
    from agents.r2d2.train_config import ConfigurationError, TrainConfig

    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigurationError(f"num_envs must be an int >= 1, got {num_envs!r}")
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{run_dir!r} is not a run directory: {config_path!r} does not exist")
    config = TrainConfig.from_json_file(config_path)
    weights, ckpt = CheckpointManager(run_dir).load_weights(checkpoint)
    # As --resume does: an edited config.json would evaluate another agent than the one trained.
    check_config_matches_checkpoint(config, ckpt.state, ckpt.path, config_path,
                                    remedy="Restore config.json to evaluate this checkpoint")
    video_path = os.path.join(run_dir, "episode.gif") if video else None
    start = time.perf_counter()
    from gymnasium.error import Error as GymnasiumError

    try:
        result, video_message = evaluate_weights(config, weights, episodes, epsilon, num_envs, seed, video_path,
                                                 env_json=read_env_json(run_dir))
    except (ValueError, TypeError, ImportError, GymnasiumError) as error:
        # Unknown id, bad env kwargs, missing env package, weights that do not fit the network.
        raise ConfigurationError(f"cannot evaluate {config.env_id!r} with env_kwargs {config.env_kwargs!r} and "
                                 f"checkpoint {ckpt.name} ({type(error).__name__}: {error})") from error
    threshold = config.solve_threshold if config.solve_threshold is not None else _env_threshold(config.env_id)
    png: str | None = os.path.join(run_dir, "learning_curve.png")
    curve_message = f"learning curve: {png}"
    try:
        plot_learning_curve(os.path.join(run_dir, "metrics.csv"), png, threshold=threshold,
                            title=f"{config.env_id} {json.dumps(config.env_kwargs) if config.env_kwargs else ''}")
    except (OSError, ValueError, KeyError, TypeError) as error:  # the evaluation itself is still written
        curve_message = f"no learning curve: {error}"
        png = None
    out = {
        **result.to_dict(),
        "checkpoint": ckpt.name,
        "env_steps": ckpt.state.get("env_steps"),
        "learner_steps": ckpt.state.get("learner_steps"),
        "training_wall_time_s": ckpt.state.get("wall_time_s"),
        "solved_at": ckpt.state.get("solved_at"),
        "env_id": config.env_id,
        "env_kwargs": config.env_kwargs,
        "solve_threshold": threshold,
        "solved": None if threshold is None else bool(result.mean >= threshold),
        "eval_seconds": time.perf_counter() - start,
        "summary": result.summary(),
        "eval_json": os.path.join(run_dir, "eval.json"),
        "learning_curve": png,
        "learning_curve_message": curve_message,
        "video": video_path if video_message.startswith("video:") else None,
        "video_message": video_message,
    }
    atomic_write_text(out["eval_json"], json.dumps(out, indent=2))
    return out


def _env_threshold(env_id: str) -> float | None:
    import gymnasium as gym

    import envs  # noqa: F401 - registers the project's ids

    try:
        return gym.spec(env_id).reward_threshold
    except Exception:  # noqa: BLE001 - unknown id: no threshold line
        return None


def plot_learning_curve(metrics_csv: str, png_path: str, threshold: float | None = None,
                        title: str = "") -> str:
    """Draw recent training return and evaluation return against env steps; returns the path.

    Written atomically (temporary file, then rename). Raises:
      FileNotFoundError: ``metrics_csv`` does not exist or has no rows.
      ValueError: ``metrics_csv`` is not a readable metrics CSV (or a value in it is not a number).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.r2d2.run_logger import read_metrics

    rows = read_metrics(metrics_csv)
    if not rows:
        raise FileNotFoundError(f"no metrics to plot in {metrics_csv!r}")
    try:
        for row in rows:
            float(row["env_steps"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{metrics_csv!r} is not a metrics CSV: bad env_steps ({error})") from None

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for row in rows:
            if row.get(key) not in (None, ""):
                xs.append(float(row["env_steps"]))
                ys.append(float(row[key]))
        return np.asarray(xs), np.asarray(ys)

    # Constrained layout makes room for the legend below the axes, off the curves.
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=110, layout="constrained")
    x, y = series("recent_return")
    if x.size:
        # Markers: a short run has a point or two, which a line alone does not show.
        ax.plot(x, y, ".-", label="training episodes (exploring actors)", color="tab:blue", alpha=0.8)
    x, y = series("eval_return")
    if x.size:
        _, std = series("eval_return_std")
        ax.plot(x, y, "o-", label="greedy evaluation", color="tab:orange")
        if std.size == y.size:
            ax.fill_between(x, y - std, y + std, color="tab:orange", alpha=0.15)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="tab:green", linestyle="--", label=f"solve threshold {threshold:g}")
    wall = [float(r["wall_time_s"]) for r in rows if r.get("wall_time_s")]
    subtitle = f" ({wall[-1] / 60:.1f} min)" if wall else ""
    ax.set_title((title + subtitle).strip())
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    try:
        atomic_write(png_path, lambda file: fig.savefig(file, format="png"), binary=True)
    finally:
        plt.close(fig)
    return png_path

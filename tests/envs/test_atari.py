"""The Atari wrappers on real ROMs (ale-py ships them): shapes, frame skip with max-pooling, no-op starts, FIRE on
reset, episodic life, reward clipping, raw game scores in the ledger and in evaluation, and a PPO smoke test."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("ale_py", reason="the Atari tests need ale-py (pip install -e '.[atari]')")

import thorndike as th  # noqa: E402
from thorndike.core.ledger import EpisodeLedger  # noqa: E402
from thorndike.envs.atari import (  # noqa: E402
    EpisodicLife,
    FireReset,
    MaxAndSkip,
    NoopReset,
    area_weights,
    atari_defaults,
)
from thorndike.envs.wrappers import register_wrapper  # noqa: E402

torch.set_num_threads(1)
QUIET = dict(progress=False, tensorboard=False, pictures=False)


def raw(game: str, **kwargs) -> gym.Env:
    """The bare ALE env, one frame per step."""
    th.envs._register_ale_envs(f"ALE/{game}-v5")
    return gym.make(f"ALE/{game}-v5", frameskip=1, **kwargs)


def frame_number(env: gym.Env) -> int:
    return int(env.unwrapped.ale.getEpisodeFrameNumber())


def lives(venv) -> int:
    return int(venv._venv.envs[0].unwrapped.ale.lives())


class RawScore(gym.Wrapper):
    """Test probe: the sum of the raw rewards passing through it, per game (reset at each real reset)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.total, self.games, self.playing = 0.0, [], False

    def reset(self, **kwargs):
        if self.playing:  # the game before this one is over
            self.games.append(self.total)
        self.total, self.playing = 0.0, True
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total += float(reward)
        return obs, reward, terminated, truncated, info


def probed(game: str):
    """``ALE/<game>`` with the preset's inner wrappers and a RawScore probe under ``game_score``; the outer wrappers
    are given to make by registered name, as a config would list them."""

    def build() -> gym.Env:
        return RawScore(MaxAndSkip(NoopReset(raw(game)), 4))

    return build


OUTER = ["game_score", "episodic_life", "fire_reset", "grayscale_resize", "clip_reward", "frame_stack"]


def probe_of(venv, copy: int = 0) -> RawScore:
    env = venv._venv.envs[copy]
    while not isinstance(env, RawScore):
        env = env.env
    return env


# ---------------------------------------------------------------- the preset


def test_an_ale_id_gets_the_preset_and_frameskip_one() -> None:
    assert atari_defaults("ALE/Pong-v5", None, {}) == (["atari"], {"frameskip": 1})
    assert atari_defaults("ALE/Pong-v5", [], {"repeat_action_probability": 0.0}) == \
        (["atari"], {"repeat_action_probability": 0.0, "frameskip": 1})
    assert atari_defaults("ALE/Pong-v5", ["clip_reward"], {}) == (["clip_reward"], {})  # no skip: frameskip stays
    assert atari_defaults("CartPole-v1", None, {}) == (None, {})
    assert atari_defaults("CartPole-v1", "clip_action", {}) == ("clip_action", {})  # make refuses it, not this
    with pytest.raises(ValueError, match="already skips frames"):
        th.envs.make("ALE/Pong-v5", env_kwargs={"frameskip": 4})


def test_the_chain_gives_uint8_stacks_of_four_84x84_frames_and_reports_games() -> None:
    venv = th.envs.make("ALE/Pong-v5", n_envs=2, seed=0)
    assert venv.single_observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    obs = venv.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8
    assert torch.equal(obs[:, 0], obs[:, 3])  # after a reset the stack repeats the first frame
    for _ in range(3):
        obs, reward, _, _, info = venv.step(torch.tensor([2, 3]))
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8 and obs.float().std() > 0
    assert set(info) == set(th.envs.INFO_KEYS + th.envs.GAME_KEYS)
    # the game counts the two steps fire_reset took (FIRE, then action 2) and the three taken here
    assert info["game_length"].tolist() == [5, 5] and info["game_over"].dtype == torch.bool
    venv.close()


def test_area_weights_average_the_covered_cells() -> None:
    weights = area_weights(5, 2)  # each output cell covers 2.5 input cells
    np.testing.assert_allclose(weights, [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]], atol=1e-6)
    np.testing.assert_allclose(area_weights(210, 84).sum(1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- the wrappers one by one


def test_frame_skip_sums_rewards_and_maxes_the_last_two_frames() -> None:
    by_hand, skipped = raw("Pong"), MaxAndSkip(raw("Pong"), 4)
    by_hand.reset(seed=3)
    skipped.reset(seed=3)
    rng = np.random.default_rng(0)
    rewards, pooled_differs = [], 0
    for _ in range(150):
        action = int(rng.integers(6))
        frames, total = [], 0.0
        for _ in range(4):
            frame, reward, terminated, truncated, _ = by_hand.step(action)
            frames.append(frame)
            total += reward
        obs, reward, _, _, _ = skipped.step(action)
        assert reward == total
        np.testing.assert_array_equal(obs, np.maximum(frames[-2], frames[-1]))
        pooled_differs += not np.array_equal(obs, frames[-1])
        rewards.append(reward)
    assert any(rewards) and pooled_differs  # points were scored, and the max differs from the last frame


def test_noop_reset_takes_1_to_30_noops() -> None:
    env = NoopReset(raw("Pong"), noop_max=30)

    def counts() -> list[int]:
        drawn = []
        for i in range(8):  # a seed reloads the ROM (slow): seed the first reset only, the generator goes on
            _, info = env.reset(seed=0) if i == 0 else env.reset()
            assert 1 <= env.last_noops <= 30
            assert info["episode_frame_number"] == frame_number(env) == env.last_noops
            drawn.append(env.last_noops)
        return drawn

    first = counts()
    assert len(set(first)) > 3
    assert counts() == first  # drawn from the seeded generator


def test_fire_reset_presses_fire_where_the_game_has_it() -> None:
    for game in ("Breakout", "Pong"):  # no sticky actions: the twin, stepped by hand, plays the same game
        env, twin = FireReset(raw(game, repeat_action_probability=0.0)), raw(game, repeat_action_probability=0.0)
        assert env.active
        obs, _ = env.reset()
        twin.reset()
        twin.step(1)
        expected, *_ = twin.step(2)
        np.testing.assert_array_equal(obs, expected)
        assert frame_number(env) == 2
    freeway = FireReset(raw("Freeway"))  # NOOP, UP, DOWN: no FIRE
    assert not freeway.active
    freeway.reset()
    assert frame_number(freeway) == 0


def test_episodic_life_ends_the_episode_but_not_the_game() -> None:
    env = EpisodicLife(MaxAndSkip(raw("Breakout"), 4))
    env.reset(seed=0)
    assert env.unwrapped.ale.lives() == 5
    env.step(1)  # launch the ball, then let the paddle miss it
    for _ in range(500):
        _, _, terminated, truncated, _ = env.step(0)
        if terminated:
            break
    assert terminated and not truncated and env.unwrapped.ale.lives() == 4
    frames = frame_number(env)
    env.reset()
    assert env.unwrapped.ale.lives() == 4 and frame_number(env) == frames + 4  # one NOOP step of the same game
    env.reset(seed=0)  # a seed asks for a new game
    assert env.unwrapped.ale.lives() == 5 and frame_number(env) == 0


# ---------------------------------------------------------------- games through the VecEnv, the ledger, evaluation


def test_a_breakout_game_is_five_training_episodes_and_one_ledger_row() -> None:
    venv = th.envs.make(probed("Breakout"), n_envs=1, seed=0, wrappers=OUTER)
    ledger = EpisodeLedger(1, "cpu")
    episodes, clipped = 0, 0.0
    for step in range(1, 2000):
        before = lives(venv)
        _, reward, terminated, _, info = venv.step(torch.tensor([0]))  # NOOP: FIRE on reset launches the ball
        ledger.record(info, step)
        clipped += float(reward)
        if terminated[0]:
            episodes += 1
            if not info["game_over"][0]:  # a life lost: the same game goes on after the autoreset
                assert lives(venv) == before - 1 > 0
        if info["game_over"][0]:
            break
    assert info["game_over"][0] and episodes == 5
    assert len(ledger) == 1 and ledger.total == 1  # the ledger counts the game, not the five lives
    raw_score = probe_of(venv).games[-1]
    assert ledger.columns["return"].tolist() == [raw_score] == [float(info["game_return"][0])]
    # the game's steps: these, fire_reset's two at the start, and after each of the four lost lives one NOOP
    # (episodic_life continuing the game) and fire_reset's two
    assert ledger.columns["length"].tolist() == [step + 2 + 4 * 3]
    assert 0 <= clipped <= raw_score
    venv.close()


def test_rewards_are_clipped_in_training_and_the_game_score_is_raw() -> None:
    venv = th.envs.make(probed("SpaceInvaders"), n_envs=1, seed=0, wrappers=OUTER)
    generator = torch.Generator().manual_seed(0)
    clipped = []
    for _ in range(300):
        _, reward, _, _, info = venv.step(torch.randint(0, 6, (1,), generator=generator))
        clipped.append(float(reward))
        if info["game_over"][0]:
            break
    assert set(clipped) <= {-1.0, 0.0, 1.0} and sum(clipped) > 0
    probe = probe_of(venv)
    game = float(info["game_return"][0])
    assert game == (probe.games[-1] if info["game_over"][0] else probe.total)
    assert game >= 5 * sum(clipped)  # an alien is worth 5 to 30 points, one clipped point
    venv.close()


def test_evaluate_plays_whole_games_and_reports_raw_scores(tmp_path) -> None:
    agent = th.make("ppo", env=probed("Breakout"), wrappers=OUTER, seed=0, n_envs=1, n_steps=8, minibatch_size=8,
                    run_root=str(tmp_path), **QUIET)
    result = agent.evaluate(episodes=1, deterministic=False, max_episode_steps=3000)
    assert result.cut == 0
    assert result.returns == [probe_of(agent.interaction._eval_env).games[0]]  # the whole game, raw
    assert min(result.lengths) > 50  # five lives, not one
    agent.interaction.close()


def test_ppo_learns_a_few_hundred_steps_on_pong_and_evaluates(tmp_path) -> None:
    agent = th.make("ppo", env="ALE/Pong-v5", seed=0, n_envs=2, n_steps=64, n_epochs=1, minibatch_size=64,
                    run_root=str(tmp_path), **QUIET)
    assert agent.env_setup.record()["wrappers"] == ["atari"]
    first = [p.detach().clone() for p in agent.model.parameters()]
    agent.learn(256)
    assert agent.interaction.obs.shape == (2, 4, 84, 84) and agent.interaction.obs.dtype == torch.uint8
    assert any(not torch.equal(a, b) for a, b in zip(first, agent.model.parameters()))
    result = agent.evaluate(episodes=1, max_episode_steps=100)
    # cut at 100 steps; the game also counts the two steps of fire_reset
    assert result.lengths == [102] and result.cut == 1 and -21 <= result.returns[0] <= 0
    agent.interaction.close()


def test_a_registered_wrapper_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_wrapper("atari", lambda env: env)


# ---------------------------------------------------------------- EnvPool


def test_envpool_that_cannot_be_imported_is_a_clear_error(monkeypatch) -> None:
    from thorndike.envs.envpool_backend import EnvPoolUnavailableError

    monkeypatch.setitem(sys.modules, "envpool", None)  # as on a platform without a wheel
    with pytest.raises(EnvPoolUnavailableError, match=r"pip install envpool .*not available.*backend='gymnasium'"):
        th.envs.make("ALE/Pong-v5", backend="envpool")


def test_envpool_refuses_what_it_cannot_run() -> None:
    pytest.importorskip("envpool", reason="EnvPool is not installed")
    with pytest.raises(ValueError, match="runs ALE ids"):
        th.envs.make("CartPole-v1", backend="envpool")
    with pytest.raises(ValueError, match="takes no other wrappers"):
        th.envs.make("ALE/Pong-v5", backend="envpool", wrappers=["clip_reward"])
    with pytest.raises(ValueError, match="does not take env_kwargs mode"):
        th.envs.make("ALE/Pong-v5", backend="envpool", env_kwargs={"mode": 1})


def test_envpool_speaks_the_same_vecenv_protocol_and_reports_raw_games() -> None:
    pytest.importorskip("envpool", reason="EnvPool is not installed")
    pool = th.envs.make("ALE/Breakout-v5", n_envs=2, seed=0, backend="envpool")
    chain = th.envs.make("ALE/Breakout-v5", n_envs=2, seed=0)
    assert pool.single_observation_space == chain.single_observation_space
    assert pool.single_action_space == chain.single_action_space
    generator = torch.Generator().manual_seed(0)
    episodes, games, clipped = [0, 0], [0, 0], [0.0, 0.0]
    for venv in (pool, chain):
        obs = venv.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8
        for _ in range(3):
            obs, reward, terminated, truncated, info = venv.step(torch.randint(0, 4, (2,), generator=generator))
        assert set(info) == set(th.envs.INFO_KEYS + th.envs.GAME_KEYS)
        assert obs.dtype == torch.uint8 and reward.dtype == torch.float32 and terminated.dtype == torch.bool
        assert {key: info[key].dtype for key in info} == {
            "final_obs": torch.uint8, "done": torch.bool, "episode_return": torch.float64,
            "episode_length": torch.int64, "game_over": torch.bool, "game_return": torch.float64,
            "game_length": torch.int64}
    chain.close()
    for _ in range(1500):  # random play until each copy's first game is over
        obs, reward, terminated, truncated, info = pool.step(torch.randint(0, 4, (2,), generator=generator))
        for i in range(2):
            if games[i] == 0:
                clipped[i] += float(reward[i])
                episodes[i] += bool(info["done"][i])
                if info["game_over"][i]:
                    games[i] = 1
                    assert float(info["game_return"][i]) >= clipped[i]  # raw: 1, 4 or 7 a brick, clipped to 1
                    assert not torch.equal(info["final_obs"][i], obs[i])  # obs is the next game's first
        if all(games):
            break
    assert games == [1, 1] and episodes == [5, 5]  # five lives, one game each
    pool.close()


def test_the_tuned_atari_dqn_is_the_nature_dqn_with_a_buffer_that_stores_each_frame_once(tmp_path) -> None:
    from thorndike.core.networks import NatureCNN
    from thorndike.core.off_policy import stacked_frames
    from thorndike.registry import tuned_config

    tuned = tuned_config("dqn", "ALE/Breakout-v5")
    assert tuned == tuned_config("dqn", "ALE/Pong-v5")
    assert (tuned["lr"], tuned["batch_size"], tuned["buffer_size"], tuned["train_freq"], tuned["gamma"]) == \
        (1e-4, 32, 100_000, 4, 0.99)
    # the tuned config as shipped, but a small buffer and an early start, so that it learns within the test
    agent = th.make("dqn", env="ALE/Breakout-v5", seed=0, n_envs=2, buffer_size=1000, learning_starts=200,
                    log_every=100, checkpoint_every=10**9, run_root=str(tmp_path), **QUIET)
    assert agent.config.target_update_interval == 1000 and agent.config.loss == "huber"
    assert isinstance(agent.q.encoder.cnn, NatureCNN) and len(agent.q.torso) == 0  # the CNN's 512 units, then Q
    assert (agent.q.head.in_features, agent.q.head.out_features) == (512, 4)
    # the buffer holds single 84x84 frames (the stack is rebuilt when sampled), not whole obs and next_obs
    assert agent.buffer.frame_stack == 4 and "obs" not in agent.buffer.data
    assert agent.buffer.data["frames"].shape[-2:] == (84, 84) and agent.buffer.data["frames"].dtype == torch.uint8
    seen: set[bytes] = set()
    step = agent.interaction.step

    def recording_step(*args, **kwargs):  # every observation the env returned, final ones too
        out = step(*args, **kwargs)
        seen.update(o.numpy().tobytes() for o in (*out[0], *out[4]["final_obs"]))
        return out

    agent.interaction.step = recording_step
    seen.update(o.numpy().tobytes() for o in agent.interaction.obs)
    first = agent.q.head.weight.detach().clone()
    agent.learn(300)
    assert not torch.equal(first, agent.q.head.weight)  # it learned (25 gradient steps)
    batch = agent.buffer.sample(64, torch.Generator().manual_seed(0))
    # each rebuilt stack is an observation the env really returned
    assert all(o.numpy().tobytes() in seen for o in (*batch["obs"], *batch["next_obs"]))
    assert torch.equal(batch["obs"][:, 1:][~batch["terminated"]], batch["next_obs"][:, :-1][~batch["terminated"]])
    agent.interaction.close()
    # the wrapper, not the shape, makes a stack: the preset and frame_stack do; no wrapper (an RGB image) does not
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert stacked_frames(agent.env_setup, space) == 4
    assert stacked_frames(type("Setup", (), {"wrappers": ["grayscale_resize"]})(), space) == 0
    assert stacked_frames(type("Setup", (), {"wrappers": []})(), gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)) == 0

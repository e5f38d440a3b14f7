"""Auto-checks for lab 02 (what is an agent): each `check_*` runs the learner's function on fresh seeded
environments and prints PASS, or raises AssertionError with a hint."""

from __future__ import annotations

import random
from typing import Any, Callable

from helpers.agents import simulations as T


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_reflex_rule(rule: Callable[[float], bool], seeds: tuple[int, ...] = (11, 22, 33)) -> None:
    """Lab 02, task 1: a reflex thermostat rule (temperature -> heater on?) keeps fresh rooms comfortable."""
    assert rule(12.0) is True or rule(12.0) == 1, "at 12 °C the heater should be on: return True below the target"
    assert not rule(26.0), "at 26 °C the heater should be off: return False above the target"
    assert all(rule(t) == rule(t) for t in (18.0, 19.9, 20.1, 22.0)), \
        "a reflex rule answers from the percept alone: the same temperature must give the same action"
    shares = []
    for seed in seeds:
        h = T.run_thermostat(rule, hours=24, seed=seed)
        shares.append(h["comfort_share"])
        assert h["comfort_share"] >= 0.8, (f"room {seed}: only {h['comfort_share']:.0%} of the time between 19 and "
                                           "22 °C: switch the heater on below about 20 °C and off above")
    _ok(f"comfort {min(shares):.0%}-{max(shares):.0%} in {len(seeds)} fresh rooms")


def check_update_map(update: Callable[[dict, Any], dict], seeds: tuple[int, ...] = (5, 6, 7, 8)) -> None:
    """Lab 02, task 2: the learner's map update matches the reference at every step, and its vacuum cleans
    everything."""
    for seed in seeds:
        world = T.VacuumWorld.random(rows=8, cols=11, seed=seed)
        mine, ref = T.MapVacuum(update=update), T.MapVacuum()
        ref_world = T.VacuumWorld.random(rows=8, cols=11, seed=seed)
        for step in range(400):
            a, b = mine(world.percept()), ref(ref_world.percept())
            assert mine.known == ref.known, (
                f"world {seed}, step {step}: your map differs from the expected one; mark the vacuum's cell "
                "'dirty' or 'clean', each side 'wall' if the percept says so, else 'free' unless already known")
            world.step(a)
            ref_world.step(b)
            if a == "STOP":
                break
        assert not world.dirt, f"world {seed}: {len(world.dirt)} dirty cells left"
    _ok(f"map identical to the reference at every step in {len(seeds)} fresh worlds; all dirt cleaned")


def _valid(grid: list[str], path: list, start: tuple, goal: tuple) -> str | None:
    if not isinstance(path, list) or not path:
        return "return a list of (row, col) cells"
    if tuple(path[0]) != start or tuple(path[-1]) != goal:
        return "the route must start at start and end at goal (both included)"
    for a, b in zip(path, path[1:]):
        if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
            return f"{a} -> {b} is not a move to a neighbouring cell"
        if grid[b[0]][b[1]] == "#":
            return f"the route goes through the wall at {b}"
    return None


def check_planner(planner: Callable[[list[str], tuple, tuple], list | None], n: int = 30) -> None:
    """Lab 02, task 3: the learner's planner finds shortest valid routes on fresh grids, and None when there is none."""
    rng = random.Random(2024)
    for i in range(n):
        grid = T.random_grid(rows=rng.randint(6, 12), cols=rng.randint(8, 16), wall_p=0.25, seed=rng.randrange(10**6))
        floor = [(r, c) for r in range(len(grid)) for c in range(len(grid[0])) if grid[r][c] == "."]
        start, goal = rng.choice(floor), rng.choice(floor)
        path = planner(grid, start, goal)
        problem = _valid(grid, path, start, goal)
        assert problem is None, f"grid {i}, {start} -> {goal}: {problem}"
        best = T.bfs_path(grid, start, goal)
        assert len(path) == len(best), (f"grid {i}: your route has {len(path) - 1} moves, the shortest "
                                        f"{len(best) - 1}: explore in order of distance (a FIFO queue)")
    walled = ["#######", "#..#..#", "#######"]
    assert planner(walled, (1, 1), (1, 4)) is None, "when the goal cannot be reached, return None"
    _ok(f"shortest valid routes on {n} fresh grids; None when the goal is walled off")


def check_bandit_update(update: Callable[[list[float], list[int], int, float], None], seeds=(3, 4, 5)) -> None:
    """Lab 02, task 4: the learner's update keeps exact running means, and a learner using it beats random."""
    rng = random.Random(99)
    q, n = [0.0] * 4, [0] * 4
    seen: list[list[float]] = [[] for _ in range(4)]
    for _ in range(200):
        arm, reward = rng.randrange(4), rng.random()
        r = update(q, n, arm, reward)
        assert r is None or r is q or isinstance(r, tuple), "update q and n in place"
        seen[arm].append(reward)
    for arm in range(4):
        assert n[arm] == len(seen[arm]), f"n[{arm}] should count the pulls of arm {arm}: add 1 per update"
        mean = sum(seen[arm]) / len(seen[arm])
        assert abs(q[arm] - mean) < 1e-9, (f"q[{arm}] = {q[arm]:.4f} but the mean reward is {mean:.4f}: "
                                           "q += (reward - q) / n after counting the pull")
    for seed in seeds:
        probs = [0.15, 0.3, 0.45, 0.6, 0.85]
        random.Random(seed).shuffle(probs)  # a fresh order: the learner must find the best arm
        bandit = T.Bandit(probs, seed=seed)
        mine = T.run_bandit(T.EpsilonGreedy(5, 0.1, seed=seed, update=update), T.Bandit(bandit.probs, seed=seed),
                            steps=1000)
        rand = T.run_bandit(T.RandomChooser(5, seed=seed), T.Bandit(bandit.probs, seed=seed), steps=1000)
        assert mine["regret"][-1] < 0.5 * rand["regret"][-1], \
            f"bandit {seed}: your learner is hardly better than random"
    _ok(f"exact running means over 200 updates; epsilon-greedy with your update beats random on {len(seeds)} bandits")

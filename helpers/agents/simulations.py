"""The four agent types of the course as small seeded simulations, and the perceive-reason-act loop.

Introduced in notebook 02 (what is an agent). No model is needed for the simulations:
- a simple reflex agent: a thermostat rule in a room-temperature simulation (`Room`, `run_thermostat`);
- a model-based agent: a robot vacuum that keeps an internal map of a partially observable grid
  (`VacuumWorld`, `MapVacuum`, `update_map`, `run_vacuum`);
- a goal-based agent: a planner that searches for a route on a grid (`bfs_path`, `astar_path`, `GoalAgent`);
- a learning agent: a bandit learner that improves from rewards (`Bandit`, `EpsilonGreedy`, `UCB1`, `run_bandit`).
`perceive_reason_act` is the loop all of them share; its reasoner is any callable, so notebook 02 plugs in
the workbook's SLM (`slm_reasoner`). Everything is seeded: the same seed gives the same run.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

Cell = tuple[int, int]  # (row, column)
MOVES: dict[str, Cell] = {"N": (-1, 0), "S": (1, 0), "W": (0, -1), "E": (0, 1)}


# ============================================================== 1. simple reflex agent: a thermostat
def reflex_thermostat(temp: float, target: float = 20.0) -> bool:
    """The simple reflex rule, heater on when the room is below the target (percept -> action) (notebook 02)."""
    return temp < target


class HysteresisThermostat:
    """A thermostat with a comfort band; it remembers whether the heater is on (one bit of state) (notebook 02)."""

    def __init__(self, low: float = 19.5, high: float = 21.0) -> None:
        if low >= high:
            raise ValueError(f"low ({low}) must be below high ({high}): the band is where the heater keeps its state")
        self.low, self.high, self.on = low, high, False

    def __call__(self, temp: float) -> bool:
        if temp < self.low:
            self.on = True
        elif temp > self.high:
            self.on = False
        return self.on


class Room:
    """A room that loses heat to a cold outside and gains it from a heater (seeded sensor noise) (notebook 02)."""

    def __init__(self, seed: int = 123, start: float = 16.0, dt_min: float = 10.0, loss_per_h: float = 0.15,
                 heater_c_per_h: float = 4.0, noise: float = 0.05) -> None:
        self.rng = random.Random(seed)
        self.temp, self.t_h, self.dt_h = start, 0.0, dt_min / 60
        self.loss, self.power, self.noise = loss_per_h, heater_c_per_h, noise

    def outside(self) -> float:
        """Outside temperature: a cold day, coldest before dawn."""
        return 5.0 + 4.0 * math.sin(2 * math.pi * (self.t_h - 9.0) / 24.0)

    def sense(self) -> float:
        """The percept: the thermometer reading."""
        return round(self.temp, 3)

    def step(self, heater_on: bool) -> None:
        """Advance the simulation by one time step with the heater on or off."""
        gain = self.power if heater_on else 0.0
        self.temp += self.dt_h * (self.loss * (self.outside() - self.temp) + gain) + self.rng.gauss(0, self.noise)
        self.t_h += self.dt_h


def run_thermostat(rule: Callable[[float], bool], hours: float = 24.0, seed: int = 123,
                   dt_min: float = 10.0, comfort: tuple[float, float] = (19.0, 22.0)) -> dict[str, Any]:
    """Run a thermostat rule (temperature -> heater on?) in a fresh `Room`; the history and scores (notebook 02)."""
    room = Room(seed=seed, dt_min=dt_min)
    hist: dict[str, Any] = {"t_h": [], "temp": [], "outside": [], "heater": []}
    for _ in range(int(round(hours * 60 / dt_min))):
        temp = room.sense()
        on = rule(temp)
        if not isinstance(on, (bool, int)):
            raise TypeError(f"the rule must return True/False (heater on?), got {on!r}")
        hist["t_h"].append(room.t_h)
        hist["temp"].append(temp)
        hist["outside"].append(room.outside())
        hist["heater"].append(bool(on))
        room.step(bool(on))
    warm = [t for t, h in zip(hist["temp"], hist["t_h"]) if h >= 2.0]  # after a 2-hour warm-up
    hist["comfort_share"] = sum(comfort[0] <= t <= comfort[1] for t in warm) / max(1, len(warm))
    hist["switches"] = sum(a != b for a, b in zip(hist["heater"], hist["heater"][1:]))
    hist["heater_hours"] = sum(hist["heater"]) * dt_min / 60
    return hist


# ============================================================== grids (shared by the vacuum and the planner)
def random_grid(rows: int = 9, cols: int = 12, wall_p: float = 0.22, seed: int = 123) -> list[str]:
    """A seeded grid of '#' walls and '.' floor, walled around, every floor cell connected (notebook 02)."""
    if rows < 3 or cols < 3:
        raise ValueError("a grid needs at least 3 rows and 3 columns (the border is wall)")
    if not 0 <= wall_p < 0.5:
        raise ValueError("wall_p must be in [0, 0.5): with more walls the floor falls apart into pieces")
    rng = random.Random(seed)
    interior = (rows - 2) * (cols - 2)
    while True:  # draw until the floor connected to (1, 1) covers at least half of the interior
        cells = [["#" if r in (0, rows - 1) or c in (0, cols - 1) or rng.random() < wall_p else "."
                  for c in range(cols)] for r in range(rows)]
        cells[1][1] = "."
        grid = ["".join(row) for row in cells]
        reach = reachable(grid, (1, 1))
        if len(reach) >= interior / 2:
            return ["".join("." if (r, c) in reach else "#" for c in range(cols)) for r in range(rows)]


def neighbours(grid: list[str], cell: Cell) -> list[Cell]:
    """Floor cells next to `cell` (N, S, W, E order)."""
    out = []
    for dr, dc in MOVES.values():
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < len(grid) and 0 <= c < len(grid[0]) and grid[r][c] != "#":
            out.append((r, c))
    return out


def reachable(grid: list[str], start: Cell) -> set[Cell]:
    """All floor cells connected to `start`."""
    seen, todo = {start}, [start]
    while todo:
        for nb in neighbours(grid, todo.pop()):
            if nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen


# ============================================================== 2. model-based agent: a robot vacuum
@dataclass
class VacuumPercept:
    """What the vacuum senses: where it is (odometry), whether its cell is dirty, walls on its four sides."""

    pos: Cell
    dirty: bool
    walls: dict[str, bool]


class VacuumWorld:
    """A grid with walls and dirt; the vacuum sees only its own cell and the four walls around it (notebook 02)."""

    def __init__(self, grid: list[str], dirt: set[Cell], start: Cell = (1, 1)) -> None:
        self.grid, self.dirt, self.pos = grid, set(dirt), start
        self.initial_dirt = len(self.dirt)

    @classmethod
    def random(cls, rows: int = 9, cols: int = 12, wall_p: float = 0.22, dirt_p: float = 0.3,
               seed: int = 123) -> "VacuumWorld":
        """A seeded world: a connected grid, dirt on a share `dirt_p` of the floor."""
        grid = random_grid(rows, cols, wall_p, seed)
        rng = random.Random(seed + 1)
        floor = sorted((r, c) for r in range(rows) for c in range(cols) if grid[r][c] == ".")
        dirt = {cell for cell in floor if rng.random() < dirt_p}
        dirt.add(floor[-1])  # at least one dirty cell, far from the start
        return cls(grid, dirt)

    def percept(self) -> VacuumPercept:
        r, c = self.pos
        walls = {d: self.grid[r + dr][c + dc] == "#" for d, (dr, dc) in MOVES.items()}
        return VacuumPercept(self.pos, self.pos in self.dirt, walls)

    def step(self, action: str) -> None:
        """Apply SUCK, N, S, W, E or STOP; bumping into a wall leaves the vacuum where it is."""
        if action == "SUCK":
            self.dirt.discard(self.pos)
        elif action in MOVES:
            dr, dc = MOVES[action]
            r, c = self.pos[0] + dr, self.pos[1] + dc
            if self.grid[r][c] != "#":
                self.pos = (r, c)
        elif action != "STOP":
            raise ValueError(f"unknown vacuum action {action!r}: use SUCK, STOP or one of {list(MOVES)}")

    @property
    def cleaned_share(self) -> float:
        return 1 - len(self.dirt) / max(1, self.initial_dirt)


def update_map(known: dict[Cell, str], percept: VacuumPercept) -> dict[Cell, str]:
    """Fold one percept into the vacuum's map: 'dirty'/'clean' here, 'wall' or 'free' (seen, not visited) around
    (notebook 02)."""
    known[percept.pos] = "dirty" if percept.dirty else "clean"
    r, c = percept.pos
    for d, (dr, dc) in MOVES.items():
        nb = (r + dr, c + dc)
        if percept.walls[d]:
            known[nb] = "wall"
        elif nb not in known:
            known[nb] = "free"
    return known


def _first_step(known: dict[Cell, str], start: Cell, targets: set[str]) -> str | None:
    """BFS over the known map (walls excluded) to the nearest cell whose state is in `targets`: the first move."""
    prev: dict[Cell, tuple[Cell, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell != start and known.get(cell) in targets:
            while prev[cell] is not None and prev[cell][0] != start:  # walk back to the first move
                cell = prev[cell][0]
            return prev[cell][1]
        for d, (dr, dc) in MOVES.items():
            nb = (cell[0] + dr, cell[1] + dc)
            if nb not in prev and known.get(nb, "wall") != "wall":
                prev[nb] = (cell, d)
                queue.append(nb)
    return None


class ReflexVacuum:
    """Simple reflex vacuum: suck if dirty, else move in a random open direction (no memory) (notebook 02)."""

    def __init__(self, seed: int = 123) -> None:
        self.rng = random.Random(seed)

    def __call__(self, p: VacuumPercept) -> str:
        if p.dirty:
            return "SUCK"
        return self.rng.choice([d for d, wall in p.walls.items() if not wall] or ["STOP"])


class MapVacuum:
    """Model-based vacuum: keeps a map, goes to the nearest dirty or unexplored cell, stops when done (notebook 02)."""

    def __init__(self, update: Callable[[dict[Cell, str], VacuumPercept], dict[Cell, str]] = update_map) -> None:
        self.update, self.known = update, {}

    def __call__(self, p: VacuumPercept) -> str:
        self.known = self.update(self.known, p)
        if p.dirty:
            self.known[p.pos] = "clean"  # the map records what the action will do
            return "SUCK"
        return _first_step(self.known, p.pos, {"free", "dirty"}) or "STOP"


def run_vacuum(agent: Callable[[VacuumPercept], str], world: VacuumWorld, steps: int = 200) -> dict[str, Any]:
    """Run a vacuum agent in `world`; share of dirt cleaned after each step, actions, stop step (notebook 02)."""
    hist: dict[str, Any] = {"cleaned": [], "actions": [], "stopped_at": None}
    for i in range(steps):
        action = agent(world.percept())
        world.step(action)
        hist["actions"].append(action)
        hist["cleaned"].append(world.cleaned_share)
        if action == "STOP":
            hist["stopped_at"] = i
            hist["cleaned"] += [world.cleaned_share] * (steps - i - 1)
            break
    return hist


# ============================================================== 3. goal-based agent: a route planner
def _check_cells(grid: list[str], *cells: Cell) -> None:
    for cell in cells:
        r, c = cell
        if not (0 <= r < len(grid) and 0 <= c < len(grid[0])):
            raise ValueError(f"cell {cell} is outside the {len(grid)}x{len(grid[0])} grid")
        if grid[r][c] == "#":
            raise ValueError(f"cell {cell} is a wall: start and goal must be floor cells")


def bfs_path(grid: list[str], start: Cell, goal: Cell) -> list[Cell] | None:
    """A shortest route from start to goal by breadth-first search (cells, both ends included), or None (notebook 02).
    """
    _check_cells(grid, start, goal)
    prev: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = [cell]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for nb in neighbours(grid, cell):
            if nb not in prev:
                prev[nb] = cell
                queue.append(nb)
    return None


def astar_path(grid: list[str], start: Cell, goal: Cell) -> tuple[list[Cell] | None, int]:
    """A* with the Manhattan distance as heuristic: (shortest route or None, cells expanded) (notebook 02)."""
    _check_cells(grid, start, goal)

    def h(cell: Cell) -> int:
        return abs(cell[0] - goal[0]) + abs(cell[1] - goal[1])

    prev: dict[Cell, Cell | None] = {start: None}
    cost = {start: 0}
    heap = [(h(start), 0, start)]
    expanded = 0
    closed: set[Cell] = set()
    while heap:
        _, g, cell = heapq.heappop(heap)
        if cell in closed:
            continue
        closed.add(cell)
        expanded += 1
        if cell == goal:
            path = [cell]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1], expanded
        for nb in neighbours(grid, cell):
            if nb not in cost or g + 1 < cost[nb]:
                cost[nb], prev[nb] = g + 1, cell
                heapq.heappush(heap, (g + 1 + h(nb), g + 1, nb))
    return None, expanded


def bfs_expanded(grid: list[str], start: Cell, goal: Cell) -> int:
    """Cells BFS expands before it reaches the goal (to compare with A*)."""
    seen, queue, n = {start}, deque([start]), 0
    while queue:
        cell = queue.popleft()
        n += 1
        if cell == goal:
            return n
        for nb in neighbours(grid, cell):
            if nb not in seen:
                seen.add(nb)
                queue.append(nb)
    return n


def path_moves(path: list[Cell]) -> list[str]:
    """The N/S/W/E moves that follow a path of neighbouring cells."""
    inv = {v: k for k, v in MOVES.items()}
    return [inv[(b[0] - a[0], b[1] - a[1])] for a, b in zip(path, path[1:])]


class GoalAgent:
    """Goal-based agent: plans a route to its goal with a planner, then follows it; replans if it is off route (notebook
    02)."""

    def __init__(self, grid: list[str], goal: Cell,
                 planner: Callable[[list[str], Cell, Cell], list[Cell] | None] = bfs_path) -> None:
        self.grid, self.goal, self.planner = grid, goal, planner
        self.plan: list[Cell] = []
        self.plans_made = 0

    def __call__(self, pos: Cell) -> str:
        if pos == self.goal:
            return "STOP"
        if pos not in self.plan:
            self.plan = self.planner(self.grid, pos, self.goal) or []
            self.plans_made += 1
            if not self.plan:
                return "STOP"  # goal unreachable: a goal-based agent can know that before moving
        i = self.plan.index(pos)
        return path_moves(self.plan[i:i + 2])[0]


# ============================================================== 4. learning agent: a multi-armed bandit
class Bandit:
    """K slot machines (say, k ways to phrase an offer); arm i pays 1 with probability probs[i] (notebook 02)."""

    def __init__(self, probs: Iterable[float], seed: int = 123) -> None:
        self.probs = list(probs)
        if not self.probs or not all(0 <= p <= 1 for p in self.probs):
            raise ValueError("probs must be a non-empty list of probabilities in [0, 1]")
        self.rng = random.Random(seed)

    @classmethod
    def random(cls, k: int = 5, seed: int = 123) -> "Bandit":
        """k arms with seeded payout probabilities between 0.1 and 0.8."""
        rng = random.Random(seed)
        return cls([round(rng.uniform(0.1, 0.8), 3) for _ in range(k)], seed=seed + 1)

    @property
    def best(self) -> int:
        return max(range(len(self.probs)), key=self.probs.__getitem__)

    def pull(self, arm: int) -> int:
        if not 0 <= arm < len(self.probs):
            raise IndexError(f"arm {arm} does not exist: choose 0..{len(self.probs) - 1}")
        return int(self.rng.random() < self.probs[arm])


def incremental_update(q: list[float], n: list[int], arm: int, reward: float) -> None:
    """The learning step, in place: count the pull and move the arm's mean reward towards `reward` (notebook 02)."""
    n[arm] += 1
    q[arm] += (reward - q[arm]) / n[arm]


class EpsilonGreedy:
    """Explore a random arm with probability epsilon, otherwise exploit the best estimate (notebook 02)."""

    def __init__(self, k: int, epsilon: float = 0.1, seed: int = 123,
                 update: Callable[[list[float], list[int], int, float], None] = incremental_update) -> None:
        self.q, self.n = [0.0] * k, [0] * k
        self.epsilon, self.rng, self.update = epsilon, random.Random(seed), update

    def choose(self) -> int:
        if self.rng.random() < self.epsilon:
            return self.rng.randrange(len(self.q))
        best = max(self.q)
        return min(i for i, v in enumerate(self.q) if v == best)

    def learn(self, arm: int, reward: float) -> None:
        self.update(self.q, self.n, arm, reward)


class UCB1:
    """Pick the arm with the best optimistic estimate, mean + sqrt(2 ln t / n): explores by doubt (notebook 02)."""

    def __init__(self, k: int,
                 update: Callable[[list[float], list[int], int, float], None] = incremental_update) -> None:
        self.q, self.n, self.update = [0.0] * k, [0] * k, update

    def choose(self) -> int:
        for i, count in enumerate(self.n):
            if count == 0:
                return i
        t = sum(self.n)
        scores = [q + math.sqrt(2 * math.log(t) / c) for q, c in zip(self.q, self.n)]
        return max(range(len(scores)), key=scores.__getitem__)

    def learn(self, arm: int, reward: float) -> None:
        self.update(self.q, self.n, arm, reward)


class RandomChooser:
    """The baseline that never learns (notebook 02)."""

    def __init__(self, k: int, seed: int = 123) -> None:
        self.k, self.rng = k, random.Random(seed)

    def choose(self) -> int:
        return self.rng.randrange(self.k)

    def learn(self, arm: int, reward: float) -> None:
        pass


def run_bandit(agent: Any, bandit: Bandit, steps: int = 1000) -> dict[str, Any]:
    """Let an agent (choose/learn) play `steps` rounds; rewards, arms and cumulative regret (notebook 02)."""
    best = bandit.probs[bandit.best]
    hist: dict[str, Any] = {"arms": [], "rewards": [], "regret": []}
    regret = 0.0
    for _ in range(steps):
        arm = agent.choose()
        reward = bandit.pull(arm)
        agent.learn(arm, reward)
        regret += best - bandit.probs[arm]  # expected reward lost against always playing the best arm
        hist["arms"].append(arm)
        hist["rewards"].append(reward)
        hist["regret"].append(regret)
    hist["best_share"] = sum(a == bandit.best for a in hist["arms"][steps // 2:]) / max(1, steps - steps // 2)
    return hist


# ============================================================== the perceive-reason-act loop
@dataclass
class Turn:
    """One pass through the loop: what the agent perceived, what it decided, what happened."""

    step: int
    percept: Any
    action: Any
    outcome: Any = None


def perceive_reason_act(perceive: Callable[[], Any], reason: Callable[[Any], Any], act: Callable[[Any], Any], *,
                        max_steps: int = 10, done: Callable[[Turn], bool] | None = None) -> list[Turn]:
    """The agent loop: percept = perceive(); action = reason(percept); outcome = act(action); repeat (notebook 02).

    Stops after `max_steps`, when perceive() returns None (nothing more to perceive), or when done(turn) is true.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    turns: list[Turn] = []
    for i in range(max_steps):
        percept = perceive()
        if percept is None:
            break
        action = reason(percept)
        turn = Turn(i, percept, action, act(action))
        turns.append(turn)
        if done is not None and done(turn):
            break
    return turns


@dataclass
class Decision:
    """An SLM reasoner's action: a tool call (name, arguments) or a text reply, and who decided."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    say: str = ""
    error: str | None = None
    answered_by: str = ""


def slm_reasoner(runtime: Any, tools: list[dict[str, Any]] | None = None, max_tokens: int = 64,
                 max_chars: int = 4000) -> Callable[[str], Decision]:
    """A reasoner backed by a model: the percept becomes a user message, the reply a `Decision` (notebook 02).

    Percepts that are not text, empty, or longer than `max_chars` (the model reads 2,048 tokens) are not sent:
    the decision carries an error saying so.
    """
    if tools is None:
        from helpers.domain.tools import openai_tools

        tools = openai_tools()

    def reason(percept: str) -> Decision:
        if not isinstance(percept, str) or not percept.strip():
            return Decision(error="empty percept: nothing to reason about (give the agent a non-empty message)")
        if len(percept) > max_chars:
            return Decision(error=f"percept of {len(percept):,} characters is longer than the {max_chars:,} this "
                                  "reasoner sends to the model: shorten it or send the relevant part")
        res = runtime.chat([{"role": "user", "content": percept}], tools, temperature=0.0, max_tokens=max_tokens)
        if res.error:
            return Decision(error=f"{res.error.get('type')}: {res.error.get('message')}", answered_by=res.answered_by)
        if res.tool_calls:
            call = res.tool_calls[0]
            return Decision(tool=call.name, arguments=call.arguments, answered_by=res.answered_by)
        return Decision(say=res.content, answered_by=res.answered_by)

    return reason


__all__ = ["Bandit", "Decision", "EpsilonGreedy", "GoalAgent", "HysteresisThermostat", "MapVacuum", "RandomChooser",
           "ReflexVacuum", "Room", "Turn", "UCB1", "VacuumPercept", "VacuumWorld", "astar_path", "bfs_expanded",
           "bfs_path", "incremental_update", "neighbours", "path_moves", "perceive_reason_act", "random_grid",
           "reachable", "reflex_thermostat", "run_bandit", "run_thermostat", "run_vacuum", "slm_reasoner",
           "update_map"]

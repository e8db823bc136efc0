"""``BlockStack-v0``: stack coloured cubes into the towers of a layout string with a Franka Panda.

See ``BlockStackEnv`` for spaces, starting state, episode end and info keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import constants as C
from envs import predicates
from envs.panda import Panda
from envs.scene import WORKSPACE, BlockState, Scene, sample_layout
from envs.sim import Sim, project_points
from envs.tasks import MAX_BLOCKS, Task, parse_task

#: Observation bounds (m) on relative block positions; anything beyond is clipped (such a state is
#: irrecoverable and ends the episode anyway).
_OBS_LIMIT = 5.0
_EE_LOW = np.array([C.EE_X[0], C.EE_Y[0], C.EE_Z[0]])
_EE_HIGH = np.array([C.EE_X[1], C.EE_Y[1], C.EE_Z[1]])


class BlockStackEnv(gym.Env):
    """Stack 2 to 10 cubes into the towers of a layout string with a Franka Panda (PyBullet).

    **Task.** ``task="ab cde"``: A on B; C on D on E (towers top to bottom, separated by spaces).
    Stages are built in the order written, each tower bottom-up (D on E, then C on D). Any valid
    layout of 2 to 10 blocks works; the blocks are the first n letters, slot i is letter i.

    **Action space.** ``Box(4)``, float32: ``(dx, dy, dz)`` in metres per control step, a
    displacement of the commanded end-effector target in the world frame, each clipped to
    +-``MAX_STEP`` (0.02 m); and a gripper command (> 0 open, <= 0 close), clipped to [-1, 1]. The
    hand always points down. The commanded target stays inside the reachable box ``EE_X``,
    ``EE_Y``, ``EE_Z`` and within ``EE_MAX_LEAD`` (3 cm) of the measured hand.

    **Observation space.** ``Dict``:

    | key | shape | dtype | meaning |
    |---|---|---|---|
    | ``blocks`` | (10, 3) | float32 | block centre minus grasp point, world axes, m; 0 = padding |
    | ``block_mask`` | (10,) | int8 | 1 for the task's blocks (first n slots), 0 for padding |
    | ``gripper`` | (2,) | float32 | last gripper command, one-hot: (1, 0) open, (0, 1) closed |

    **Starting state.** The arm at its home pose (hand at (0.40, 0, 0.30) m, open). Cubes rest on
    the table at centres drawn uniformly in x 0.33..0.62 m, y -0.24..0.24 m (robot base at the
    origin), at least 10 cm apart, yaw within +-15 degrees. Every reset removes the cubes, the
    table and every constraint and rebuilds them; the Panda, whose URDF takes about 60 ms to load,
    is kept and returned to its home pose at rest. A seed fixes the episode bit for bit whatever
    ran before (tested against a fresh env, also after an episode cut off mid-grasp).

    **Episode end.** ``terminated`` when every stage is complete (success) or the state is
    irrecoverable (a cube off the table or out of the workspace, non-finite or exploding state).
    ``truncated`` after ``horizon_per_stage * num_stages`` control steps (default 250 per stage).

    **Info** on every step: ``is_success`` (bool), ``stage`` (stages complete in build order, int),
    ``num_stages`` (int); on the last step also ``failure``: None on success, else
    ``"manipulation_failure"`` (irrecoverable), ``"wrong_move"`` (a block rests on a block that is
    not its target support), or ``"recoverable_failure"`` (time ran out), in that precedence.

    Args:
        task: layout string or ``Task``.
        render_mode: None or ``"rgb_array"`` (PyBullet's CPU renderer).
        render_size: side of the square ``rgb_array`` image (px).
        horizon_per_stage: control steps allowed per stage.
        gui: open PyBullet's GUI window to watch the episode live (needs a display). A separate
            switch rather than ``render_mode="human"`` so that headless tools that try every
            render mode (gymnasium's ``check_env``) never open a window.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"],
                                          "render_fps": C.CONTROL_HZ}

    def __init__(
        self,
        task: str | Task = "ab",
        render_mode: str | None = None,
        render_size: int = C.RENDER_SIZE,
        horizon_per_stage: int = C.HORIZON_PER_STAGE,
        gui: bool = False,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        if render_size < 16:
            raise ValueError(f"render_size must be at least 16 px, got {render_size}")
        if horizon_per_stage < 1:
            raise ValueError(f"horizon_per_stage must be at least 1, got {horizon_per_stage}")
        self.task = parse_task(task)
        self.render_mode = render_mode
        self.render_size = render_size
        self.horizon_per_stage = horizon_per_stage
        self.action_space = spaces.Box(
            low=np.array([-C.MAX_STEP] * 3 + [-1.0], dtype=np.float32),
            high=np.array([C.MAX_STEP] * 3 + [1.0], dtype=np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Dict({
            "blocks": spaces.Box(-_OBS_LIMIT, _OBS_LIMIT, shape=(MAX_BLOCKS, 3), dtype=np.float32),
            "block_mask": spaces.MultiBinary(MAX_BLOCKS),
            "gripper": spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32),
        })
        self.sim = Sim(gui=gui, physics_hz=C.PHYSICS_HZ,
                       solver_iterations=C.SOLVER_ITERATIONS)
        self.panda: Panda | None = None
        self.scene: Scene | None = None
        self.elapsed_steps = 0
        self.block_state: BlockState | None = None
        #: Measured grasp-point position (m, world) after the last reset or step.
        self.hand = np.zeros(3)
        #: The (4,) action passed to the last ``step`` as given (before clipping); None after a
        #: reset. Videos read it to show what the actor chose at each step.
        self.last_action: np.ndarray | None = None

    # --- gymnasium API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Rebuild the world and sample a new cube layout.

        ``options={"task": "abc"}`` switches the task for this and later episodes.
        """
        super().reset(seed=seed)
        if self.sim.closed:
            raise RuntimeError("reset() called on a closed BlockStack env")
        if options and "task" in options:
            self.task = parse_task(options["task"])
        positions, yaws = sample_layout(self.task.num_blocks, self.np_random)
        if self.panda is None:
            self.sim.reset_world()
            self.panda = Panda(self.sim)
        else:  # keep the loaded robot: rebuilding everything else is bit-for-bit the same
            self.sim.clear_except({self.panda.body})
            self.panda.reset()
        self.scene = Scene(self.sim, self.task.num_blocks, positions, yaws, self.panda.body)
        self.elapsed_steps = 0
        self.last_action = None
        state = self.block_state = self.scene.read()
        self.hand = self.panda.ee_position()
        status = predicates.layout_status(self.task, state.positions, state.free)
        return self._observation(), self._info(status, irrecoverable=False, done=False)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.panda is None or self.scene is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(4)
        self.last_action = action.copy()
        delta = np.minimum(np.maximum(action[:3], -C.MAX_STEP), C.MAX_STEP)
        self.panda.apply(self._next_target(delta), close=bool(action[3] <= 0.0))
        self.sim.step(C.SUBSTEPS)
        self.elapsed_steps += 1
        state = self.block_state = self.scene.read()
        self.hand = self.panda.ee_position()
        status = predicates.layout_status(self.task, state.positions, state.free)
        irrecoverable = predicates.is_irrecoverable(state.positions, state.velocities,
                                                    workspace=WORKSPACE)
        terminated = status.success or irrecoverable
        truncated = not terminated and self.elapsed_steps >= self.horizon
        info = self._info(status, irrecoverable, done=terminated or truncated)
        return self._observation(), float(status.success), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """An (H, W, 3) uint8 image in ``rgb_array`` mode, else None."""
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render(self.render_size, self.render_size, C.CAMERA_TARGET,
                               C.CAMERA_DISTANCE, C.CAMERA_YAW, C.CAMERA_PITCH, C.CAMERA_FOV)

    def block_pixels(self) -> np.ndarray:
        """(n, 2) float: where each cube's centre appears in a ``render()`` image, in pixels
        (x to the right, y down, (0, 0) the top-left corner of the top-left pixel), from the
        renderer's own camera. A cube hidden behind the arm still gets its position."""
        if self.block_state is None:
            raise RuntimeError("call reset() before block_pixels()")
        return project_points(self.block_state.positions, self.render_size, self.render_size,
                              C.CAMERA_TARGET, C.CAMERA_DISTANCE, C.CAMERA_YAW,
                              C.CAMERA_PITCH, C.CAMERA_FOV)

    def close(self) -> None:
        """Release the PyBullet client; idempotent."""
        self.sim.close()
        self.panda = None
        self.scene = None

    # --- helpers -----------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        """Control steps before truncation."""
        return self.horizon_per_stage * self.task.num_stages

    def _next_target(self, delta: np.ndarray) -> np.ndarray:
        """The commanded target moved by ``delta`` (m), kept reachable and close to the hand."""
        target = self.panda.target + delta
        lead = C.EE_MAX_LEAD
        target = np.minimum(np.maximum(target, self.hand - lead), self.hand + lead)
        return np.minimum(np.maximum(target, _EE_LOW), _EE_HIGH)

    def _observation(self) -> dict[str, np.ndarray]:
        n = self.task.num_blocks
        blocks = np.zeros((MAX_BLOCKS, 3), dtype=np.float32)
        relative = self.block_state.positions - self.hand
        if not np.isfinite(relative).all():  # only in an exploded (irrecoverable) state
            relative = np.nan_to_num(relative, nan=0.0)
        blocks[:n] = np.minimum(np.maximum(relative, -_OBS_LIMIT), _OBS_LIMIT)
        mask = np.zeros(MAX_BLOCKS, dtype=np.int8)
        mask[:n] = 1
        closed = self.panda.gripper_closed
        gripper = np.array([0.0, 1.0] if closed else [1.0, 0.0], dtype=np.float32)
        return {"blocks": blocks, "block_mask": mask, "gripper": gripper}

    def _info(
        self, status: predicates.LayoutStatus, irrecoverable: bool, *, done: bool
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "is_success": status.success,
            "stage": status.stage,
            "num_stages": self.task.num_stages,
        }
        if done:
            info["failure"] = predicates.failure_class(status, irrecoverable)
        return info

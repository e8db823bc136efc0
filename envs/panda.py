"""The Franka Panda arm: inverse kinematics toward an end-effector target, and a real finger grip.

The hand always points straight down (fingers closing along world y). Each control step the
commanded end-effector target is turned into joint targets by PyBullet's IK (with joint limits and a
rest pose in the null space, called from the current joint state) and tracked by the URDF's joint
motors. The two fingers are coupled by a gear constraint, since PyBullet ignores ``<mimic>``, and
close under position control with a bounded force: a cube is held by friction alone.
"""

from __future__ import annotations

import numpy as np

from envs import constants as C
from envs.sim import Sim, euler_to_quaternion

_FINGER_FORCES = (C.FINGER_FORCE, C.FINGER_FORCE)
_FINGER_GAINS = (C.FINGER_GAIN, C.FINGER_GAIN)


class Panda:
    """The robot, built inside a ``Sim``. Positions are metres in the world frame."""

    def __init__(self, sim: Sim):
        self.sim = sim
        self.body = sim.load_urdf("panda", C.PANDA_URDF, (0.0, 0.0, C.TABLE_TOP_Z), fixed_base=True)
        # IK takes limits, ranges and rest pose for every movable joint: the arm's 7 and 2 fingers.
        # Kept as plain lists: they are passed to PyBullet on every control step.
        lower, upper, force = sim.joint_limits(self.body, C.ARM_JOINTS + C.FINGER_JOINTS)
        self._lower, self._upper = lower.tolist(), upper.tolist()
        self._arm_forces = force[: len(C.ARM_JOINTS)].tolist()
        self._ranges = (upper - lower).tolist()
        self._rest = list(C.HOME_JOINTS + (C.FINGER_OPEN, C.FINGER_OPEN))
        self._orientation = euler_to_quaternion(C.EE_EULER)
        for link in C.FINGER_JOINTS:
            sim.set_friction(self.body, link, C.CUBE_LATERAL_FRICTION, C.CUBE_SPINNING_FRICTION)
        self.gripper_closed = False
        #: The commanded end-effector target (m): actions move it, IK chases it.
        self.target = np.zeros(3)
        self.reset()

    def reset(self) -> None:
        """Back to the home pose at rest, open, with a new finger gear constraint.

        Call after ``Sim.clear_except`` (which removed the old constraint) to reuse the loaded
        robot for a new episode.
        """
        sim = self.sim
        sim.gear_constraint(self.body, C.FINGER_JOINTS[0], C.FINGER_JOINTS[1], ratio=-1.0,
                            max_force=50.0)
        sim.reset_joints(self.body, C.ARM_JOINTS, C.HOME_JOINTS)
        sim.reset_joints(self.body, C.FINGER_JOINTS, (C.FINGER_OPEN, C.FINGER_OPEN))
        self.gripper_closed = False
        self.target = self.ee_position()
        self._command_arm(self.target)
        self._command_fingers()

    @property
    def finger_links(self) -> tuple[int, ...]:
        return C.FINGER_JOINTS

    def ee_position(self) -> np.ndarray:
        """Measured position (m) of ``panda_grasptarget``, between the fingertips."""
        return self.sim.link_position(self.body, C.EE_LINK)

    def finger_opening(self) -> float:
        """Gap between the fingers (m): 0 closed, 0.08 fully open."""
        return float(self.sim.joint_positions(self.body, C.FINGER_JOINTS).sum())

    def joint_angles(self) -> np.ndarray:
        """Arm joint angles (rad)."""
        return self.sim.joint_positions(self.body, C.ARM_JOINTS)

    def apply(self, target: np.ndarray, close: bool) -> None:
        """Command the end-effector target (m, world) and the gripper for the next control step."""
        self.target = target
        self.gripper_closed = close
        self._command_arm(target)
        self._command_fingers()

    def _command_arm(self, target: np.ndarray) -> None:
        q = self.sim.inverse_kinematics(
            self.body, C.EE_LINK, target.tolist(), self._orientation, self._lower, self._upper,
            self._ranges, self._rest,
        )
        self.sim.position_control(self.body, C.ARM_JOINTS, q[: len(C.ARM_JOINTS)].tolist(),
                                  self._arm_forces)

    def _command_fingers(self) -> None:
        width = 0.0 if self.gripper_closed else C.FINGER_OPEN
        self.sim.position_control(self.body, C.FINGER_JOINTS, (width, width), _FINGER_FORCES,
                                  gains=_FINGER_GAINS)

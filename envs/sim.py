"""The only module of ``envs`` that talks to PyBullet.

``Sim`` owns one PyBullet client (DIRECT by default, GUI on request), names its bodies, and exposes
the handful of calls the robot, the task and the env need. Every call passes the client id, so
several ``Sim`` instances in one process never share physics state.

PyBullet prints from C (a build banner on import, ``argv[0]=`` per client, ``b3Warning`` lines);
``silenced_c_output`` redirects file descriptors 1 and 2 around such calls so command-line output
and progress bars stay clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from envs import constants as C


@contextlib.contextmanager
def silenced_c_output() -> Iterator[None]:
    """Send everything written to fds 1 and 2 (including from C code) to /dev/null."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null: print rather than fail
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # fd closed (daemonised process): nothing to silence
                continue
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


with silenced_c_output():
    import pybullet as pb
    import pybullet_data


class Sim:
    """One PyBullet world. Units: metres, seconds, kilograms; world frame.

    Args:
        gui: open the PyBullet GUI instead of a headless DIRECT client.
        physics_hz: physics step rate (Hz).
        solver_iterations: constraint solver iterations per physics step.
    """

    def __init__(self, *, gui: bool = False, physics_hz: int = 240, solver_iterations: int = 50):
        self.physics_hz = physics_hz
        self.solver_iterations = solver_iterations
        mode = pb.GUI if gui else pb.DIRECT
        with silenced_c_output():
            self.client = pb.connect(mode)
        if self.client < 0:
            raise RuntimeError("could not start a PyBullet client (is a GUI display available?)")
        self.gui = gui
        self.bodies: dict[str, int] = {}
        self._closed = False
        self.reset_world()

    # --- world lifecycle ----------------------------------------------------------------------
    def reset_world(self) -> None:
        """Remove every body and constraint and restore gravity and solver settings."""
        cid = self.client
        pb.resetSimulation(physicsClientId=cid)
        pb.setGravity(0.0, 0.0, C.GRAVITY, physicsClientId=cid)
        pb.setTimeStep(1.0 / self.physics_hz, physicsClientId=cid)
        pb.setPhysicsEngineParameter(
            numSolverIterations=self.solver_iterations, deterministicOverlappingPairs=1,
            physicsClientId=cid,
        )
        if self.gui:
            pb.configureDebugVisualizer(pb.COV_ENABLE_GUI, 0, physicsClientId=cid)
        self.bodies.clear()

    def clear_except(self, keep: set[int]) -> None:
        """Remove every constraint and every body but ``keep`` (cheaper than ``reset_world`` when
        the kept bodies are expensive to load, like the Panda: about 60 ms per ``loadURDF``).

        Bodies created afterwards get larger unique ids than the kept ones, as after a rebuild
        that loads the kept bodies first, so PyBullet's deterministic pair ordering is the same.
        """
        cid = self.client
        constraints = [pb.getConstraintUniqueId(i, physicsClientId=cid)
                       for i in range(pb.getNumConstraints(physicsClientId=cid))]
        for constraint in constraints:
            pb.removeConstraint(constraint, physicsClientId=cid)
        bodies = [pb.getBodyUniqueId(i, physicsClientId=cid)
                  for i in range(pb.getNumBodies(physicsClientId=cid))]
        for body in bodies:
            if body not in keep:
                pb.removeBody(body, physicsClientId=cid)
        self.bodies = {name: body for name, body in self.bodies.items() if body in keep}

    def close(self) -> None:
        """Disconnect; safe to call more than once."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(pb.error), silenced_c_output():
                pb.disconnect(physicsClientId=self.client)

    @property
    def closed(self) -> bool:
        return self._closed

    def step(self, substeps: int) -> None:
        """Advance physics by ``substeps`` steps of 1/physics_hz seconds."""
        for _ in range(substeps):
            pb.stepSimulation(physicsClientId=self.client)

    # --- building -------------------------------------------------------------------------------
    def load_urdf(self, name: str, path: str, position: Sequence[float], fixed_base: bool) -> int:
        """Load a URDF from ``pybullet_data`` (or an absolute path) as body ``name``."""
        full = path if os.path.isabs(path) else os.path.join(pybullet_data.getDataPath(), path)
        with silenced_c_output():
            body = pb.loadURDF(
                full, basePosition=list(position), useFixedBase=fixed_base,
                flags=pb.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
                physicsClientId=self.client,
            )
        self.bodies[name] = body
        return body

    def create_box(
        self,
        name: str,
        half_extents: Sequence[float],
        position: Sequence[float],
        rgba: Sequence[float],
        mass: float,
        yaw: float = 0.0,
    ) -> int:
        """Create a box body (mass 0 = static) centred at ``position`` with the given yaw (rad)."""
        cid = self.client
        col = pb.createCollisionShape(
            pb.GEOM_BOX, halfExtents=list(half_extents), physicsClientId=cid
        )
        vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=list(rgba), physicsClientId=cid
        )
        body = pb.createMultiBody(
            baseMass=mass, baseCollisionShapeIndex=col, baseVisualShapeIndex=vis,
            basePosition=list(position),
            baseOrientation=pb.getQuaternionFromEuler((0.0, 0.0, yaw)),
            physicsClientId=cid,
        )
        self.bodies[name] = body
        return body

    def set_friction(self, body: int, link: int, lateral: float, spinning: float = 0.0) -> None:
        pb.changeDynamics(
            body, link, lateralFriction=lateral, spinningFriction=spinning, rollingFriction=0.0,
            physicsClientId=self.client,
        )

    def gear_constraint(
        self, body: int, link_a: int, link_b: int, ratio: float, max_force: float
    ) -> int:
        """Couple two joints of one body (PyBullet ignores the URDF ``<mimic>`` tag)."""
        cid = self.client
        c = pb.createConstraint(
            body, link_a, body, link_b, jointType=pb.JOINT_GEAR, jointAxis=(1, 0, 0),
            parentFramePosition=(0, 0, 0), childFramePosition=(0, 0, 0), physicsClientId=cid,
        )
        pb.changeConstraint(c, gearRatio=ratio, erp=0.1, maxForce=max_force, physicsClientId=cid)
        return c

    # --- joints -----------------------------------------------------------------------------------
    def joint_limits(
        self, body: int, joints: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower limits, upper limits and max forces of ``joints`` (rad or m; N or N m)."""
        infos = [pb.getJointInfo(body, j, physicsClientId=self.client) for j in joints]
        lower = np.array([i[8] for i in infos])
        upper = np.array([i[9] for i in infos])
        force = np.array([i[10] for i in infos])
        return lower, upper, force

    def reset_joints(self, body: int, joints: Sequence[int], values: Sequence[float]) -> None:
        for j, q in zip(joints, values, strict=True):
            pb.resetJointState(body, j, q, 0.0, physicsClientId=self.client)

    def joint_positions(self, body: int, joints: Sequence[int]) -> np.ndarray:
        states = pb.getJointStates(body, list(joints), physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def position_control(
        self,
        body: int,
        joints: Sequence[int],
        targets: Sequence[float],
        forces: Sequence[float],
        gains: Sequence[float] | None = None,
    ) -> None:
        kwargs = {} if gains is None else {"positionGains": gains}
        pb.setJointMotorControlArray(
            body, joints, pb.POSITION_CONTROL, targetPositions=targets, forces=forces,
            physicsClientId=self.client, **kwargs,
        )

    def inverse_kinematics(
        self,
        body: int,
        link: int,
        position: Sequence[float],
        orientation: Sequence[float],
        lower: Sequence[float],
        upper: Sequence[float],
        ranges: Sequence[float],
        rest: Sequence[float],
    ) -> np.ndarray:
        """Joint angles (all movable joints, in order) that bring ``link`` to the given pose."""
        q = pb.calculateInverseKinematics(
            body, link, position, orientation, lowerLimits=lower, upperLimits=upper,
            jointRanges=ranges, restPoses=rest, physicsClientId=self.client,
        )
        return np.asarray(q)

    # --- state reads ------------------------------------------------------------------------------
    def link_position(self, body: int, link: int) -> np.ndarray:
        """World position (m) of a link's frame."""
        state = pb.getLinkState(body, link, computeForwardKinematics=True,
                                physicsClientId=self.client)
        return np.array(state[4])

    def base_positions(self, bodies: Sequence[int]) -> np.ndarray:
        """(n, 3) world positions (m) of body bases."""
        cid = self.client
        return np.array(
            [pb.getBasePositionAndOrientation(b, physicsClientId=cid)[0] for b in bodies]
        )

    def base_poses(self, bodies: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) positions (m) and (n, 4) xyzw quaternions of body bases."""
        cid = self.client
        poses = [pb.getBasePositionAndOrientation(b, physicsClientId=cid) for b in bodies]
        return np.array([p[0] for p in poses]), np.array([p[1] for p in poses])

    def base_velocities(self, bodies: Sequence[int]) -> np.ndarray:
        """(n, 3) linear velocities (m/s) of body bases."""
        cid = self.client
        return np.array([pb.getBaseVelocity(b, physicsClientId=cid)[0] for b in bodies])

    def reset_base_pose(self, body: int, position: Sequence[float], yaw: float = 0.0) -> None:
        """Teleport a body (for tests and perturbations); velocity is zeroed."""
        cid = self.client
        pb.resetBasePositionAndOrientation(
            body, list(position), pb.getQuaternionFromEuler((0.0, 0.0, yaw)), physicsClientId=cid
        )
        pb.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=cid)

    def touching(self, body: int) -> set[int]:
        """Ids of the bodies currently in contact with ``body``."""
        return {c[2] for c in pb.getContactPoints(bodyA=body, physicsClientId=self.client)}

    def contact_links(self, body_a: int, body_b: int) -> set[int]:
        """Links of ``body_a`` currently in contact with ``body_b``."""
        points = pb.getContactPoints(bodyA=body_a, bodyB=body_b, physicsClientId=self.client)
        return {c[3] for c in points}

    # --- rendering --------------------------------------------------------------------------------
    def render(
        self,
        width: int,
        height: int,
        target: Sequence[float],
        distance: float,
        yaw: float,
        pitch: float,
        fov: float,
    ) -> np.ndarray:
        """(height, width, 3) uint8 RGB image from PyBullet's CPU renderer."""
        cid = self.client
        view, proj = camera_matrices(width / height, target, distance, yaw, pitch, fov)
        _, _, rgba, _, _ = pb.getCameraImage(
            width, height, view.T.ravel().tolist(), proj.T.ravel().tolist(),
            renderer=pb.ER_TINY_RENDERER, shadow=0, flags=pb.ER_NO_SEGMENTATION_MASK,
            physicsClientId=cid,
        )
        image = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
        return np.ascontiguousarray(image[:, :, :3])


def camera_matrices(
    aspect: float, target: Sequence[float], distance: float, yaw: float, pitch: float, fov: float
) -> tuple[np.ndarray, np.ndarray]:
    """View and projection matrices (4x4 each, row-major numpy) of an orbit camera.

    ``yaw`` and ``pitch`` in degrees (PyBullet's convention), ``fov`` vertical, in degrees;
    near/far planes at 0.05 m and 5 m. A world point p projects to clip space as
    ``proj @ view @ [p, 1]``.
    """
    view = pb.computeViewMatrixFromYawPitchRoll(list(target), distance, yaw, pitch, 0.0, 2)
    proj = pb.computeProjectionMatrixFOV(fov, aspect, 0.05, 5.0)
    # PyBullet returns column-major flat tuples; transpose to row-major.
    return np.reshape(view, (4, 4)).T, np.reshape(proj, (4, 4)).T


def project_points(points: np.ndarray, width: int, height: int, target: Sequence[float],
                   distance: float, yaw: float, pitch: float, fov: float) -> np.ndarray:
    """(n, 2) pixel coordinates of (n, 3) world points (m) in a ``Sim.render`` image of that
    camera: x to the right, y down, (0, 0) the top-left corner of the image."""
    view, proj = camera_matrices(width / height, target, distance, yaw, pitch, fov)
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    homogeneous = np.hstack([points, np.ones((len(points), 1))])  # (n, 4)
    clip = homogeneous @ (proj @ view).T  # (n, 4)
    ndc = clip[:, :2] / clip[:, 3:4]  # (n, 2), -1..1 inside the image, y up
    return np.column_stack([(ndc[:, 0] + 1.0) * 0.5 * width, (1.0 - ndc[:, 1]) * 0.5 * height])


def euler_to_quaternion(euler: Sequence[float]) -> tuple[float, float, float, float]:
    """(roll, pitch, yaw) rad to an xyzw quaternion."""
    return tuple(pb.getQuaternionFromEuler(list(euler)))


def quaternion_yaw(quaternion: Sequence[float]) -> float:
    """Yaw (rad) of an xyzw quaternion."""
    return float(pb.getEulerFromQuaternion(list(quaternion))[2])

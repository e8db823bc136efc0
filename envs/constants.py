"""Every physical and timing constant of the block-stacking world, with the reason for its value.

Frames and units: world frame, metres, seconds, kilograms, radians. The robot base sits at the
origin; the table top is the plane z = 0 (``TABLE_TOP_Z``); +x points away from the robot.
Values marked "sim-notes" were measured on the project's 2-core machine
(``shared/reference/sim-notes.md``); values marked "paper" come from Duan et al. 2017.
"""

from __future__ import annotations

import math

# --- Time ---------------------------------------------------------------------------------
#: Physics rate (Hz). Bullet's default; contacts between 5 cm cubes stay stable at this rate and a
#: step costs ~65 us with 5 cubes (sim-notes). Higher rates cut stack creep but cost linearly.
PHYSICS_HZ = 240
#: Control rate (Hz) of ``BlockStack-v0``: one action per 50 ms, as in most tabletop benchmarks;
#: at 2 cm per step the hand moves at most 0.4 m/s, which the fingers' grip survives (sim-notes).
CONTROL_HZ = 20
#: Physics substeps per control step.
SUBSTEPS = PHYSICS_HZ // CONTROL_HZ
#: Constraint solver iterations. 50 gave 100% grasps on 5-cube towers and 99% on a 10-cube tower;
#: 150 reaches 100% there but costs ~1.3x (sim-notes). We keep 50 and carry cubes carefully.
SOLVER_ITERATIONS = 50
GRAVITY = -9.81

# --- Table and workspace ---------------------------------------------------------------------
TABLE_TOP_Z = 0.0
#: Table box (centre x, half extents). Larger than the workspace so that a cube pushed a little
#: outside it stays on the table; a cube pushed further falls to the floor.
TABLE_CENTER_X = 0.40
TABLE_HALF_EXTENTS = (0.55, 0.60, 0.025)
#: The floor a fallen cube lands on (m).
FLOOR_Z = -0.70

#: Region where cubes start (m, world frame). Every point is reachable with the hand pointing down,
#: including 50 cm above it, and it leaves room between cubes and the robot base (sim-notes).
SPAWN_X = (0.33, 0.62)
SPAWN_Y = (-0.24, 0.24)
#: Minimum distance between two initial cube centres (m): a hand descending on one cube clears
#: its neighbours (the hand is about 20 cm long across the finger axis, so the expert also plans).
SPAWN_MIN_SPACING = 0.10
#: Initial cube yaw is uniform in +-SPAWN_MAX_YAW (rad); closing the fingers squares a cube up.
SPAWN_MAX_YAW = math.radians(15.0)

#: Bounds of the commanded end-effector target (m). The hand cannot go below the table nor far
#: outside the region where it can keep pointing down.
EE_X = (0.20, 0.75)
EE_Y = (-0.40, 0.40)
EE_Z = (TABLE_TOP_Z + 0.005, 0.60)
#: The commanded target never runs further than this from the measured hand (m), so pushing against
#: an obstacle does not wind up a large hidden offset.
EE_MAX_LEAD = 0.03

# --- Cubes -------------------------------------------------------------------------------------
CUBE_SIZE = 0.05  # paper: 5 cm cubes (stage test 5 +- 0.5 cm)
CUBE_HALF = CUBE_SIZE / 2
CUBE_MASS = 0.1
#: Lateral friction of cubes and fingers. At 0.2 every grasp fails and at 0.5 for both, too
#: (sim-notes); 1.0 carries a cube through 0.4 m/s moves without slip.
CUBE_LATERAL_FRICTION = 1.0
CUBE_SPINNING_FRICTION = 0.001
#: RGBA colour of each cube, by letter; chosen to be far apart in hue and brightness.
CUBE_COLORS: dict[str, tuple[float, float, float, float]] = {
    "a": (0.90, 0.10, 0.10, 1.0),  # red
    "b": (0.10, 0.75, 0.15, 1.0),  # green
    "c": (0.10, 0.25, 0.95, 1.0),  # blue
    "d": (0.95, 0.85, 0.10, 1.0),  # yellow
    "e": (0.85, 0.15, 0.85, 1.0),  # magenta
    "f": (0.10, 0.85, 0.85, 1.0),  # cyan
    "g": (1.00, 0.50, 0.00, 1.0),  # orange
    "h": (0.45, 0.15, 0.65, 1.0),  # purple
    "i": (0.98, 0.98, 0.98, 1.0),  # white
    "j": (0.10, 0.10, 0.10, 1.0),  # black
}

# --- Robot -------------------------------------------------------------------------------------
PANDA_URDF = "franka_panda/panda.urdf"
ARM_JOINTS = (0, 1, 2, 3, 4, 5, 6)
FINGER_JOINTS = (9, 10)
#: ``panda_grasptarget``: 10.5 cm below the hand, between the fingertips (sim-notes).
EE_LINK = 11
#: Joint angles of the home pose (rad): hand pointing down at ``HOME_EE``; also the IK rest pose.
HOME_JOINTS = (0.0, -0.4193, 0.0, -2.5741, 0.0, 2.1547, math.pi / 4)
HOME_EE = (0.40, 0.0, 0.30)
#: Orientation (roll, pitch, yaw) of the end effector: pointing straight down, fingers closing
#: along world y.
EE_EULER = (math.pi, 0.0, 0.0)
#: Maximum finger joint opening (m, per finger; the gap is twice this).
FINGER_OPEN = 0.04
#: Grip force per finger (N): 40 N held a cube through every fast move (sim-notes: 5-100 N work).
FINGER_FORCE = 40.0
#: Finger position gain; the default 0.1 closes too slowly for a 20 Hz controller.
FINGER_GAIN = 0.3

# --- Action ------------------------------------------------------------------------------------
#: Largest end-effector displacement per control step along each axis (m): 2 cm at 20 Hz.
MAX_STEP = 0.02

# --- Episode -----------------------------------------------------------------------------------
#: Control steps allowed per stage. The scripted expert needs ~95 (p95 ~130) per stacking operation
#: (sim-notes); 250 leaves time to recover from a drop. The paper's code allowed 500 of its steps.
HORIZON_PER_STAGE = 250
#: A cube slower than this (m/s) counts as settled (paper: a stage counts once the block rests).
SETTLED_SPEED = 0.05

# --- Rendering ---------------------------------------------------------------------------------
RENDER_SIZE = 256
#: Camera looking at the workspace from the front left, far enough to show the whole arm and a
#: 10-cube tower (yaw and pitch in degrees, as PyBullet's ``computeViewMatrixFromYawPitchRoll``).
CAMERA_TARGET = (0.34, 0.0, 0.27)
CAMERA_DISTANCE = 1.28
CAMERA_YAW = 35.0
CAMERA_PITCH = -32.0
CAMERA_FOV = 50.0

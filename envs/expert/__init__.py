"""A closed-loop scripted expert for ``BlockStack-v0``, and DART-style noise injection.

``ScriptedExpert().act(env)`` returns the ``Box(4)`` action for the env's CURRENT state. It keeps
no memory between calls: every step it re-derives, from the privileged state alone (cube centres,
measured grasp point, commanded target, finger opening, last gripper command, finger contacts),

1. which cube is in the hand, if any (gripper commanded closed, the cube touches both fingers and
   the fingers are no wider than a cube);
2. the next *move* (one cube and where it must go), from the task and the current layout
   (``plan_move``): unstack a cube resting on a wrong support, clear cubes off a source or target,
   move a cube out of the way of a tower about to grow, move a tall tower's base near the robot,
   or put the first unfinished stage's source on its target;
3. the phase of that move from the hand's pose relative to the cubes: reach above the cube, descend,
   close, lift, carry above the destination, descend, open, retreat.

Because nothing is remembered, the expert answers any state a learner may reach (DAgger), recovers
from drops and perturbations (a dropped cube is the next move's cube again, a wrong cube in the hand
is set down in free table space, a knocked tower fails the "correct" test and is rebuilt), and only
slows down when its actions are noisy or snapped to discrete bins.

Frames and units: world frame, metres; the robot base at the origin, the table top at z = 0. Motion
settings follow ``shared/reference/sim-notes.md`` (measured): at most 2 cm per control step in free
space, 5 mm per step within about 3 cm of a contact, release with the held cube's bottom about
3 mm above the target's top, align the HELD cube (not the hand) over the target, carry above
every column near the path and high enough for the forearm and elbow to clear every column
under them (``arm_floor``), keep the hand's collision box (+-10.4 cm along y, +-3.6 cm along x,
from 3.5 cm above the grasp point) away from columns two cubes higher than the working level, and
build towers of seven or more cubes near x = 0.45 m where the hand can reach their top.

Collisions of the arm with columns are predicted by ``arm_hits`` (boxes around the hand, wrist and
forearm from their measured AABBs, a radius around the elbow and a corridor under the upper arm
for tall columns). Before a tower grows, cubes that would become unreachable next to it are moved
away, and a lone base whose tower would crowd a finished one is moved; set-down spots are chosen
clear of every tower site (``free_spots``), out of the way of the plan's pending move, and only
where the plan leaves the cube alone, also when it lands a centimetre off and over the plan's
next moves (``set_down``). A spot for a cube moved out of the way still leaves the open fingers
room around the stage's source.

Modules, each read top-down (its data types, then its public entry, then the helpers in the order
they are used; a function is defined below every function of its module that calls it):

- ``world``: ``WorldView`` and ``observe`` (the privileged state), and what the expert reads of
  it: the held cube, the geometric support of each cube (``predicates.support_of``, plus
  ``TABLE`` / ``IN_AIR``), the cubes already correct, ``above`` / ``top_of`` / ``column``; the
  gripper gaps (open, held, empty).
- ``clearance``: the arm's geometry (``ARM_BOXES``, elbow radius, upper-arm corridor, hand and
  wrist zones, ``FINGERTIP_DROP``), ``arm_hits`` / ``arm_floor``, ``conflict`` and ``level_z``.
- ``spots``: free table spots (``free_spots``) and the room the open fingers need
  (``has_room``, ``leaves_room``).
- ``planner``: ``Move`` and ``plan_move``: table moves, intruders in a growing tower's way,
  clearing a source or target, the tall-tower site, ``tower_sites``.
- ``set_down``: where a held cube that the plan does not move goes (``set_down``), judged by
  following the plan ahead as if the cube stood there.
- ``motion``: the motion settings and steering: rise, cross above the columns near the path
  (hand zones and ``arm_floor``), descend slowly near contacts (``go_to``, ``steer``).
- ``scripted``: ``ScriptedExpert``, which ties them into one action per control step.
- ``noise``: ``DEFAULT_NOISE_STD``, ``noisy_action`` and ``NoisyExpert`` (DART-style noise).

Nothing in this package imports PyBullet: ``observe`` only reads the env passed to it.
"""

from envs.expert.clearance import arm_floor, arm_hits
from envs.expert.noise import DEFAULT_NOISE_STD, NoisyExpert, noisy_action
from envs.expert.planner import Move, plan_move
from envs.expert.scripted import ScriptedExpert
from envs.expert.spots import free_spots
from envs.expert.world import WorldView, observe

#: Version of the expert's behaviour, recorded in every dataset (``expert_version``): bump it when
#: a change alters the actions it returns, so that resuming an old dataset is refused.
EXPERT_VERSION = 3

__all__ = [
    "DEFAULT_NOISE_STD",
    "EXPERT_VERSION",
    "Move",
    "NoisyExpert",
    "ScriptedExpert",
    "WorldView",
    "arm_floor",
    "arm_hits",
    "free_spots",
    "noisy_action",
    "observe",
    "plan_move",
]

"""Control steps per second of ``BlockStack-v0`` against a raw PyBullet loop, in the same run.

Both loops run in the same world (the env is reset with the same seed before each run) and send
the same end-effector displacements: the raw loop calls PyBullet directly (IK, arm and finger motor
commands, 12 physics substeps, and the same state reads: cube poses and velocities, hand position,
contacts), the env loop calls ``env.step``. The ratio env/raw is our overhead; target >= 0.85.

    python benchmarks/env_speed.py [--steps 600] [--repeats 3] [--blocks 2 5 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import envs
from envs import constants as C
from envs.sim import pb  # imported through envs.sim, which silences PyBullet's banner
from envs.stack_env import BlockStackEnv

_LAYOUTS = {n: "".join(envs.tasks.BLOCK_LETTERS[:n]) for n in range(2, 11)}


def action_sequence(steps: int, seed: int) -> np.ndarray:
    """(steps, 4) actions: a smooth random walk of the hand over the cubes, gripper open."""
    rng = np.random.default_rng(seed)
    actions = np.zeros((steps, 4), dtype=np.float32)
    direction = rng.normal(size=3)
    for t in range(steps):
        direction = 0.9 * direction + 0.1 * rng.normal(size=3)
        actions[t, :3] = np.clip(direction, -1, 1) * C.MAX_STEP
    actions[:, 3] = 1.0
    return actions


def run_env(env: BlockStackEnv, actions: np.ndarray, seed: int) -> float:
    """Seconds for ``env.step`` over ``actions``."""
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return time.perf_counter() - start


def run_raw(env: BlockStackEnv, actions: np.ndarray, seed: int) -> float:
    """Seconds for the same control loop written directly against PyBullet."""
    env.reset(seed=seed)
    cid, robot, cubes = env.sim.client, env.panda.body, env.scene.cubes
    arm, fingers = list(C.ARM_JOINTS), list(C.FINGER_JOINTS)
    movable = arm + fingers
    infos = [pb.getJointInfo(robot, j, physicsClientId=cid) for j in movable]
    lower = [i[8] for i in infos]
    upper = [i[9] for i in infos]
    ranges = [u - lo for u, lo in zip(upper, lower, strict=True)]
    forces = [i[10] for i in infos][: len(arm)]
    rest = list(C.HOME_JOINTS) + [C.FINGER_OPEN] * 2
    down = pb.getQuaternionFromEuler(C.EE_EULER)
    ee_low = np.array([C.EE_X[0], C.EE_Y[0], C.EE_Z[0]])
    ee_high = np.array([C.EE_X[1], C.EE_Y[1], C.EE_Z[1]])
    target = np.array(pb.getLinkState(robot, C.EE_LINK, physicsClientId=cid)[4])
    start = time.perf_counter()
    for action in actions:
        hand = np.array(pb.getLinkState(robot, C.EE_LINK, computeForwardKinematics=True,
                                        physicsClientId=cid)[4])
        target = np.clip(target + action[:3], hand - C.EE_MAX_LEAD, hand + C.EE_MAX_LEAD)
        target = np.clip(target, ee_low, ee_high)
        q = pb.calculateInverseKinematics(robot, C.EE_LINK, target.tolist(), down,
                                          lowerLimits=lower, upperLimits=upper,
                                          jointRanges=ranges, restPoses=rest, physicsClientId=cid)
        pb.setJointMotorControlArray(robot, arm, pb.POSITION_CONTROL, targetPositions=q[:7],
                                     forces=forces, physicsClientId=cid)
        pb.setJointMotorControlArray(robot, fingers, pb.POSITION_CONTROL,
                                     targetPositions=[C.FINGER_OPEN] * 2,
                                     forces=[C.FINGER_FORCE] * 2,
                                     positionGains=[C.FINGER_GAIN] * 2, physicsClientId=cid)
        for _ in range(C.SUBSTEPS):
            pb.stepSimulation(physicsClientId=cid)
        for cube in cubes:
            pb.getBasePositionAndOrientation(cube, physicsClientId=cid)
            pb.getBaseVelocity(cube, physicsClientId=cid)
        pb.getContactPoints(bodyA=robot, physicsClientId=cid)
        pb.getLinkState(robot, C.EE_LINK, computeForwardKinematics=True, physicsClientId=cid)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="control steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per loop (best is kept)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"BlockStack-v0 vs raw PyBullet: {args.steps} control steps x {args.repeats} repeats "
          f"(best), {C.SUBSTEPS} substeps at {C.PHYSICS_HZ} Hz")
    print(f"{'blocks':>6}  {'raw steps/s':>11}  {'env steps/s':>11}  {'env/raw':>7}")
    for n in args.blocks:
        env = BlockStackEnv(task=_LAYOUTS[n])
        actions = action_sequence(args.steps, args.seed)
        raw, wrapped = [], []
        for _ in range(args.repeats):  # interleaved so that drifts in machine load hit both
            raw.append(run_raw(env, actions, args.seed))
            wrapped.append(run_env(env, actions, args.seed))
        env.close()
        raw_rate, env_rate = args.steps / min(raw), args.steps / min(wrapped)
        print(f"{n:>6}  {raw_rate:>11.0f}  {env_rate:>11.0f}  {env_rate / raw_rate:>7.2f}")


if __name__ == "__main__":
    main()

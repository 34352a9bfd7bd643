// Synthetic world benchmark: how long a LiDAR scan, a camera picture and a whole agent-frame take
// to simulate, on one scenario frame of a fixed seed. Figures are medians of several runs.

import { buildScenario, frameSolids, agentLidarPose, agentBasePose } from '../datasets/synthetic/scenario.ts';
import { Scene } from '../datasets/synthetic/raycast.ts';
import { LIDAR_CONFIGS, type LidarBeams, scanLidar } from '../datasets/synthetic/lidar.ts';
import { VEHICLE_CAMERAS, cameraPose, renderCamera } from '../datasets/synthetic/camera.ts';
import { groundReflectivity, renderAgentFrame } from '../datasets/synthetic/render.ts';
import { rngFor } from '../datasets/rng.ts';
import { encodePcd } from '../datasets/pcd.ts';
import { timeIt } from './timing.ts';

export async function run(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  let t0 = performance.now();
  const world = buildScenario({ seed: 7, split: 'train', index: 0, frames: 10 });
  out.world_build_10_frames_ms = performance.now() - t0;
  const solids = frameSolids(world, 0);
  t0 = performance.now();
  const scene = new Scene(solids);
  out.scene_index_ms = performance.now() - t0;
  out.scene_solids = solids.length;
  out.scene_vehicles = world.vehicles.length;

  const agent = world.agents[0];
  const pose = agentLidarPose(world, agent, 0);
  const reflect = groundReflectivity(world.town);
  let points64 = 0;
  for (const beams of [64, 32, 16] as LidarBeams[]) {
    const cfg = LIDAR_CONFIGS[beams];
    let k = 0;
    out[`lidar${beams}_scan_ms`] = timeIt(5, () => {
      const scan = scanLidar(scene, pose, cfg, rngFor('bench', beams, k++), agent.id, reflect);
      if (beams === 64) points64 = scan.points.length / 4;
    });
    out[`lidar${beams}_rays`] = cfg.channels * cfg.azimuthSteps;
  }
  out.lidar64_points = points64;
  out.lidar64_mrays_per_s = (LIDAR_CONFIGS[64].channels * LIDAR_CONFIGS[64].azimuthSteps) / (out.lidar64_scan_ms as number) / 1000;

  const scan = scanLidar(scene, pose, LIDAR_CONFIGS[64], rngFor('bench', 'pcd'), agent.id, reflect);
  out.pcd_ascii_encode_64_ms = timeIt(3, () => encodePcd(scan.points, 'ascii'));
  out.pcd_binary_compressed_encode_64_ms = timeIt(3, () => encodePcd(scan.points, 'binary_compressed'));

  const cam = cameraPose(agentBasePose(world, agent, 0), VEHICLE_CAMERAS[0]);
  out.camera_400x300_ms = timeIt(3, () => renderCamera(scene, world.town, cam, 400, 300, agent.id));
  out.camera_400x300_no_shadows_ms = timeIt(3, () => renderCamera(scene, world.town, cam, 400, 300, agent.id, { shadows: false }));
  out.camera_800x600_ms = timeIt(1, () => renderCamera(scene, world.town, cam, 800, 600, agent.id));

  // One agent-frame as `heal generate` makes it: 3 scans + 4 cameras with depth, encoded.
  out.frame_total_ms = timeIt(3, () => renderAgentFrame(world, scene, 0, 0, { camera: { width: 400, height: 300 } }));
  out.frame_lidar_only_ms = timeIt(3, () => renderAgentFrame(world, scene, 0, 0, { camera: null }));
  return out;
}

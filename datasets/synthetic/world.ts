// The synthetic world as plain data: what the town looks like, where every vehicle is at every
// frame, and who the connected agents are. Nothing here depends on the renderers, so a viewer or
// a test can rebuild or show a scene from this record alone (it is JSON-serialisable).
//
// Frames and axes follow CARLA/UE4 (formats.md §1.3): x forward/east, y right/south, z up,
// left-handed, meters; yaw in degrees in poses, radians inside solids.

/** What a surface is made of: the camera shades by kind and colour, the LiDAR uses reflectivity. */
export interface Material {
  kind: MaterialKind;
  /** Linear RGB in [0, 1]. */
  color: [number, number, number];
  /** LiDAR return strength before range falloff, in [0, 1]. */
  reflectivity: number;
  /** Facade style for buildings (window layout), 0..3; unused elsewhere. */
  pattern?: number;
}

export type MaterialKind =
  | 'block' // raised sidewalk/lot slab: its top is textured by the ground layout
  | 'building'
  | 'wall'
  | 'hedge'
  | 'foliage'
  | 'trunk'
  | 'metal' // poles, traffic-light heads, bins
  | 'glass'
  | 'shelter' // bus-stop roof and panels
  | 'paint' // vehicle body
  | 'cabin'; // vehicle greenhouse: glass sides, painted roof

/** An upright box turned by `yaw` (radians) about z, spanning z0..z1. */
export interface BoxSolid {
  shape: 'box';
  cx: number;
  cy: number;
  z0: number;
  z1: number;
  /** Half length along the box's own x and half width along its y. */
  hx: number;
  hy: number;
  yaw: number;
  material: Material;
  /** 0 for scenery; the vehicle id for vehicle parts; the agent id for an agent's own mast. */
  owner: number;
}

export interface CylinderSolid {
  shape: 'cylinder';
  cx: number;
  cy: number;
  z0: number;
  z1: number;
  r: number;
  material: Material;
  owner: number;
}

export interface SphereSolid {
  shape: 'sphere';
  cx: number;
  cy: number;
  cz: number;
  r: number;
  material: Material;
  owner: number;
}

export type Solid = BoxSolid | CylinderSolid | SphereSolid;

export type BlockKind = 'buildings' | 'park' | 'parking' | 'plaza';

/** The area between four roads: a slab raised by the curb height, ringed by sidewalk. */
export interface Block {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  kind: BlockKind;
}

/** Road grid: roads run along y at each x in `xs` and along x at each y in `ys`. */
export interface Town {
  xs: number[];
  ys: number[];
  /** Half width of the asphalt: travel lane + parking strip on each side. */
  roadHalfWidth: number;
  laneWidth: number;
  sidewalkWidth: number;
  curbHeight: number;
  blocks: Block[];
  /** Buildings, trees, poles, walls, bus stops, block slabs. */
  solids: Solid[];
  /** Direction towards the sun, unit vector (world axes). */
  sun: [number, number, number];
  /** Bounds of everything: [xmin, ymin, xmax, ymax]. */
  bounds: [number, number, number, number];
}

export type VehicleType = 'compact' | 'sedan' | 'suv' | 'van' | 'truck' | 'bus';

export interface VehicleSpec {
  /** CARLA-like actor id (4 digits). */
  id: number;
  type: VehicleType;
  /** Full sizes of the ground-truth box, meters. */
  length: number;
  width: number;
  height: number;
  color: [number, number, number];
  parked: boolean;
  /** True for connected vehicles (agents). */
  connected: boolean;
}

/** One vehicle's actor pose at one frame: origin at ground level under the box centre. */
export interface VehiclePose {
  x: number;
  y: number;
  z: number;
  /** Degrees. */
  yaw: number;
  /** m/s along the heading. */
  speed: number;
}

export interface Agent {
  /** Positive for vehicles (the vehicle's actor id), negative for roadside units. */
  id: number;
  kind: 'vehicle' | 'rsu';
  /** For an RSU: the mast's base pose [x, y, z, roll, yaw, pitch] (it never moves). */
  basePose?: [number, number, number, number, number, number];
  /** For an RSU: LiDAR height above the mast base. */
  mastHeight?: number;
}

export interface ScenarioWorld {
  /** Folder name, e.g. 2021_08_23_15_19_19. */
  name: string;
  split: string;
  index: number;
  seed: number;
  town: Town;
  /** CARLA frame ids written as <ts>: 6-digit, step 2 (20 Hz simulation dumped every 2nd step). */
  timestamps: string[];
  vehicles: VehicleSpec[];
  /** poses[frame][vehicle index]: same order as `vehicles`. */
  poses: VehiclePose[][];
  /**
   * Future poses of each connected vehicle after each frame, for plan_trajectory:
   * plans[frame][agent index] = waypoints [x, y, speed km/h].
   */
  plans: number[][][][];
  /** Agents in id order: connected vehicles, then the roadside unit. */
  agents: Agent[];
}

// A healview.Frame (proto/scene.proto) as protobufjs decodes it in the page: field names in
// camelCase, bytes as Uint8Array, unset scalars at their defaults. Only the fields the page reads.

export interface ViewBox {
  /** [x, y, z, h, w, l, yaw]. */
  box: number[];
  /** 8 corners x [x, y, z]; corners 0..3 are the bottom face. */
  corners: number[];
  score: number;
  /** healview.BoxStatus: 1 true positive, 2 false positive, 3 matched, 4 missed. */
  status: number;
}

export interface ViewAgent {
  id: number;
  type: string;
  kind: string;
  /** T_ego<-agent, 4x4 row-major; empty when unknown. */
  pose: number[];
  ego: boolean;
  used: boolean;
  skipped: string;
  distance: number;
  cameras: { name: string }[];
  pointsTotal: number;
  modality: string;
}

export interface ViewForegroundLevel {
  level: number;
  width: number;
  height: number;
  /** agents x height x width bytes, probability * 255. */
  data: Uint8Array;
  agents: number[];
}

export interface ViewFrame {
  scenario: string;
  timestamp: string;
  egoId: number;
  agents: ViewAgent[];
  /** Absent when no agent has points. */
  points: { xyz: Uint8Array; agent: Uint8Array; count: number } | null;
  gt: ViewBox[];
  predictions: ViewBox[];
  foreground: ViewForegroundLevel[];
  range: number[];
  leftHanded: boolean;
  detectionsFrom: string;
  iouThreshold: number;
  notes: string[];
  provider: string;
  buildMs: number;
}

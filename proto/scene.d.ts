// Generated from proto/scene.proto by `npm run proto` (proto/generate.ts); do not edit.
import * as $protobuf from "protobufjs";
import Long = require("long");

/** Namespace healview. */
export namespace healview {

    /** BoxStatus enum. */
    enum BoxStatus {

        /** BOX_STATUS_UNSPECIFIED value */
        BOX_STATUS_UNSPECIFIED = 0,

        /** a prediction matched to a GT box */
        TRUE_POSITIVE = 1,

        /** a prediction matched to nothing */
        FALSE_POSITIVE = 2,

        /** a GT box some prediction matched */
        MATCHED = 3,

        /** a GT box no prediction matched */
        MISSED = 4
    }

    /**
     * Properties of a Box.
     * @deprecated Use healview.Box.$Properties instead.
     */
    interface IBox extends healview.Box.$Properties {
    }

    /** Represents a Box. */
    class Box {

        /**
         * Constructs a new Box.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.Box.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** [x, y, z, h, w, l, yaw] (heal's Box7). */
        box: number[];

        /** 8 corners x [x, y, z] in heal's corner order (corners 0..3 are the bottom face). */
        corners: number[];

        /** Predictions only. */
        score: number;

        /** Box status. */
        status: healview.BoxStatus;
    }

    namespace Box {

        /** Properties of a Box. */
        interface $Properties {

            /** [x, y, z, h, w, l, yaw] (heal's Box7). */
            box?: (number[]|null);

            /** 8 corners x [x, y, z] in heal's corner order (corners 0..3 are the bottom face). */
            corners?: (number[]|null);

            /** Predictions only. */
            score?: (number|null);

            /** Box status */
            status?: (healview.BoxStatus|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Box. */
        type $Shape = healview.Box.$Properties;
    }

    /**
     * Properties of a Camera.
     * @deprecated Use healview.Camera.$Properties instead.
     */
    interface ICamera extends healview.Camera.$Properties {
    }

    /** Represents a Camera. */
    class Camera {

        /**
         * Constructs a new Camera.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.Camera.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** e.g. "camera0"; the picture itself comes from /api/camera (so scrubbing does not carry them). */
        name: string;
    }

    namespace Camera {

        /** Properties of a Camera. */
        interface $Properties {

            /** e.g. "camera0"; the picture itself comes from /api/camera (so scrubbing does not carry them). */
            name?: (string|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Camera. */
        type $Shape = healview.Camera.$Properties;
    }

    /**
     * Properties of an Agent.
     * @deprecated Use healview.Agent.$Properties instead.
     */
    interface IAgent extends healview.Agent.$Properties {
    }

    /** Represents an Agent. */
    class Agent {

        /**
         * Constructs a new Agent.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.Agent.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** Agent id. */
        id: number;

        /** Agent type ("m1".."m4"). */
        type: string;

        /** "vehicle" or "rsu". */
        kind: string;

        /** T_ego<-agent, 4x4 row-major, both LiDAR frames ground-aligned. */
        pose: number[];

        /** Agent ego. */
        ego: boolean;

        /** Whether the ego fused this agent's message. */
        used: boolean;

        /** Why not, when not (out of range, rejected message). */
        skipped: string;

        /** XY distance to the ego's LiDAR, meters. */
        distance: number;

        /** LiDAR file the points came from ("000068_32.pcd"), or empty. */
        lidarFile: string;

        /** Agent cameras. */
        cameras: healview.Camera.$Properties[];

        /** Points of this agent before subsampling. */
        pointsTotal: number;

        /** "lidar" or "camera": a camera agent's points are shown for reference, its model never sees them. */
        modality: string;
    }

    namespace Agent {

        /** Properties of an Agent. */
        interface $Properties {

            /** Agent id */
            id?: (number|null);

            /** Agent type ("m1".."m4"). */
            type?: (string|null);

            /** "vehicle" or "rsu". */
            kind?: (string|null);

            /** T_ego<-agent, 4x4 row-major, both LiDAR frames ground-aligned. */
            pose?: (number[]|null);

            /** Agent ego */
            ego?: (boolean|null);

            /** Whether the ego fused this agent's message. */
            used?: (boolean|null);

            /** Why not, when not (out of range, rejected message). */
            skipped?: (string|null);

            /** XY distance to the ego's LiDAR, meters. */
            distance?: (number|null);

            /** LiDAR file the points came from ("000068_32.pcd"), or empty. */
            lidarFile?: (string|null);

            /** Agent cameras */
            cameras?: (healview.Camera.$Properties[]|null);

            /** Points of this agent before subsampling. */
            pointsTotal?: (number|null);

            /** "lidar" or "camera": a camera agent's points are shown for reference, its model never sees them. */
            modality?: (string|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of an Agent. */
        type $Shape = healview.Agent.$Properties;
    }

    /**
     * Properties of a Points.
     * @deprecated Use healview.Points.$Properties instead.
     */
    interface IPoints extends healview.Points.$Properties {
    }

    /** Represents a Points. */
    class Points {

        /**
         * Constructs a new Points.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.Points.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** N x [x, y, z], little-endian float32, ego frame. */
        xyz: Uint8Array;

        /** N bytes: index into Frame.agents of the point's agent. */
        agent: Uint8Array;

        /** Points count. */
        count: number;
    }

    namespace Points {

        /** Properties of a Points. */
        interface $Properties {

            /** N x [x, y, z], little-endian float32, ego frame. */
            xyz?: (Uint8Array|null);

            /** N bytes: index into Frame.agents of the point's agent. */
            agent?: (Uint8Array|null);

            /** Points count */
            count?: (number|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Points. */
        type $Shape = healview.Points.$Properties;
    }

    /**
     * Properties of a ForegroundLevel.
     * @deprecated Use healview.ForegroundLevel.$Properties instead.
     */
    interface IForegroundLevel extends healview.ForegroundLevel.$Properties {
    }

    /**
     * One pyramid level's foreground probability (sigmoid of the fusion's occupancy logit), warped into
     * the ego frame, one map per fused agent. Row r covers y in [y_min + r*cell, ...), column c covers
     * x in [x_min + c*cell, ...), as proto/heal.proto's Grid.
     */
    class ForegroundLevel {

        /**
         * Constructs a new ForegroundLevel.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.ForegroundLevel.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** ForegroundLevel level. */
        level: number;

        /** ForegroundLevel width. */
        width: number;

        /** ForegroundLevel height. */
        height: number;

        /** agents x height x width bytes, probability * 255 rounded. */
        data: Uint8Array;

        /** Agent ids of the maps, in order (the fused agents, ego first). */
        agents: number[];
    }

    namespace ForegroundLevel {

        /** Properties of a ForegroundLevel. */
        interface $Properties {

            /** ForegroundLevel level */
            level?: (number|null);

            /** ForegroundLevel width */
            width?: (number|null);

            /** ForegroundLevel height */
            height?: (number|null);

            /** agents x height x width bytes, probability * 255 rounded. */
            data?: (Uint8Array|null);

            /** Agent ids of the maps, in order (the fused agents, ego first). */
            agents?: (number[]|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a ForegroundLevel. */
        type $Shape = healview.ForegroundLevel.$Properties;
    }

    /**
     * Properties of a Frame.
     * @deprecated Use healview.Frame.$Properties instead.
     */
    interface IFrame extends healview.Frame.$Properties {
    }

    /** Represents a Frame. */
    class Frame {

        /**
         * Constructs a new Frame.
         * @param [properties] Properties to set
         */
        constructor(properties?: healview.Frame.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** "split/name". */
        scenario: string;

        /** Frame timestamp. */
        timestamp: string;

        /** Frame egoId. */
        egoId: number;

        /** Frame agents. */
        agents: healview.Agent.$Properties[];

        /** Frame points. */
        points?: (healview.Points.$Properties|null);

        /** Frame gt. */
        gt: healview.Box.$Properties[];

        /** Frame predictions. */
        predictions: healview.Box.$Properties[];

        /** Frame foreground. */
        foreground: healview.ForegroundLevel.$Properties[];

        /** [x_min, y_min, z_min, x_max, y_max, z_max] of the shared BEV space. */
        range: number[];

        /** OPV2V/V2XSet LiDAR frames are left-handed (x forward, y right); the page mirrors y to draw them. */
        leftHanded: boolean;

        /** "run" (detections from the run's frames.jsonl) or "computed" (run here on demand). */
        detectionsFrom: string;

        /** Frame iouThreshold. */
        iouThreshold: number;

        /** Things the page must show (random weights, pose noise of a run, skipped agents ...). */
        notes: string[];

        /** Execution provider of the on-demand pass, e.g. "cpu". */
        provider: string;

        /** Milliseconds the server spent building this frame. */
        buildMs: number;
    }

    namespace Frame {

        /** Properties of a Frame. */
        interface $Properties {

            /** "split/name". */
            scenario?: (string|null);

            /** Frame timestamp */
            timestamp?: (string|null);

            /** Frame egoId */
            egoId?: (number|null);

            /** Frame agents */
            agents?: (healview.Agent.$Properties[]|null);

            /** Frame points */
            points?: (healview.Points.$Properties|null);

            /** Frame gt */
            gt?: (healview.Box.$Properties[]|null);

            /** Frame predictions */
            predictions?: (healview.Box.$Properties[]|null);

            /** Frame foreground */
            foreground?: (healview.ForegroundLevel.$Properties[]|null);

            /** [x_min, y_min, z_min, x_max, y_max, z_max] of the shared BEV space. */
            range?: (number[]|null);

            /** OPV2V/V2XSet LiDAR frames are left-handed (x forward, y right); the page mirrors y to draw them. */
            leftHanded?: (boolean|null);

            /** "run" (detections from the run's frames.jsonl) or "computed" (run here on demand). */
            detectionsFrom?: (string|null);

            /** Frame iouThreshold */
            iouThreshold?: (number|null);

            /** Things the page must show (random weights, pose noise of a run, skipped agents ...). */
            notes?: (string[]|null);

            /** Execution provider of the on-demand pass, e.g. "cpu". */
            provider?: (string|null);

            /** Milliseconds the server spent building this frame. */
            buildMs?: (number|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Frame. */
        type $Shape = healview.Frame.$Properties;
    }
}

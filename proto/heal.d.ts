// Generated from proto/heal.proto by `npm run proto` (proto/generate.ts); do not edit.
import * as $protobuf from "protobufjs";
import Long = require("long");

/** Namespace heal. */
export namespace heal {

    /**
     * Properties of a Header.
     * @deprecated Use heal.Header.$Properties instead.
     */
    interface IHeader extends heal.Header.$Properties {
    }

    /** Represents a Header. */
    class Header {

        /**
         * Constructs a new Header.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Header.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** Sender's id within the scene (e.g. the OPV2V CAV id "641"). */
        agentId: string;

        /** Agent type of the sender ("m1".."m4"): which encoder made the features. */
        agentType: string;

        /** Frame timestamp of the sensor data, as the dataset names it (e.g. "000069"). */
        timestamp: string;

        /** Increases by one per message from this sender. */
        sequence: (number|Long);

        /** Schema version this message was written with (currently 1). 0 means unset and is rejected. */
        schemaVersion: number;

        /**
         * Issue 14: how Features.data was coded. Absent: plain dtype coding of the grid's channels, no
         * entropy coder (what every sender wrote before codecs). The receiver decodes by it alone.
         */
        featureCodec?: (heal.FeatureCodec.$Properties|null);
    }

    namespace Header {

        /** Properties of a Header. */
        interface $Properties {

            /** Sender's id within the scene (e.g. the OPV2V CAV id "641"). */
            agentId?: (string|null);

            /** Agent type of the sender ("m1".."m4"): which encoder made the features. */
            agentType?: (string|null);

            /** Frame timestamp of the sensor data, as the dataset names it (e.g. "000069"). */
            timestamp?: (string|null);

            /** Increases by one per message from this sender. */
            sequence?: (number|Long|null);

            /** Schema version this message was written with (currently 1). 0 means unset and is rejected. */
            schemaVersion?: (number|null);

            /**
             * Issue 14: how Features.data was coded. Absent: plain dtype coding of the grid's channels, no
             * entropy coder (what every sender wrote before codecs). The receiver decodes by it alone.
             */
            featureCodec?: (heal.FeatureCodec.$Properties|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Header. */
        type $Shape = heal.Header.$Properties;
    }

    /**
     * Properties of a FeatureCodec.
     * @deprecated Use heal.FeatureCodec.$Properties instead.
     */
    interface IFeatureCodec extends heal.FeatureCodec.$Properties {
    }

    /** Issue 14: the codec of a message's features, named in its header. */
    class FeatureCodec {

        /**
         * Constructs a new FeatureCodec.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.FeatureCodec.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /**
         * The codec's name as the sender's configuration spells it, e.g. "learned16+int8+top256+deflate"
         * (informative: decoding uses the fields below, Features.dtype and SparseMask).
         */
        name: string;

        /**
         * Learned channel compressor: channels on the wire (0: none, Features.data holds the grid's
         * channels). The receiver restores the grid's channels with its decoder for channels/code_channels.
         */
        codeChannels: number;

        /** FeatureCodec entropy. */
        entropy: heal.EntropyCoder;

        /** Bytes of Features.data before the entropy coder (0 without one); bounds what decoding inflates. */
        rawLength: number;
    }

    namespace FeatureCodec {

        /** Properties of a FeatureCodec. */
        interface $Properties {

            /**
             * The codec's name as the sender's configuration spells it, e.g. "learned16+int8+top256+deflate"
             * (informative: decoding uses the fields below, Features.dtype and SparseMask).
             */
            name?: (string|null);

            /**
             * Learned channel compressor: channels on the wire (0: none, Features.data holds the grid's
             * channels). The receiver restores the grid's channels with its decoder for channels/code_channels.
             */
            codeChannels?: (number|null);

            /** FeatureCodec entropy */
            entropy?: (heal.EntropyCoder|null);

            /** Bytes of Features.data before the entropy coder (0 without one); bounds what decoding inflates. */
            rawLength?: (number|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a FeatureCodec. */
        type $Shape = heal.FeatureCodec.$Properties;
    }

    /** Issue 14: a general-purpose compressor over Features.data (after quantisation). */
    enum EntropyCoder {

        /** ENTROPY_NONE value */
        ENTROPY_NONE = 0,

        /** raw deflate (RFC 1951), no zlib header */
        DEFLATE = 1,

        /** RFC 7932 */
        BROTLI = 2
    }

    /**
     * Properties of a Pose.
     * @deprecated Use heal.Pose.$Properties instead.
     */
    interface IPose extends heal.Pose.$Properties {
    }

    /** T_world<-lidar of the sender, 4x4 row-major (16 values). */
    class Pose {

        /**
         * Constructs a new Pose.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Pose.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** Pose matrix. */
        matrix: number[];
    }

    namespace Pose {

        /** Properties of a Pose. */
        interface $Properties {

            /** Pose matrix */
            matrix?: (number[]|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Pose. */
        type $Shape = heal.Pose.$Properties;
    }

    /**
     * Properties of a Grid.
     * @deprecated Use heal.Grid.$Properties instead.
     */
    interface IGrid extends heal.Grid.$Properties {
    }

    /**
     * The BEV grid the features live on, in the sender's LiDAR frame. Row r covers
     * y in [y_min + r*cell_size, y_min + (r+1)*cell_size) (rows = y, increasing), column c covers
     * x in [x_min + c*cell_size, ...). width*cell_size = x_max - x_min, height*cell_size = y_max - y_min.
     */
    class Grid {

        /**
         * Constructs a new Grid.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Grid.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** Grid xMin. */
        xMin: number;

        /** Grid xMax. */
        xMax: number;

        /** Grid yMin. */
        yMin: number;

        /** Grid yMax. */
        yMax: number;

        /** Grid cellSize. */
        cellSize: number;

        /** Grid width. */
        width: number;

        /** Grid height. */
        height: number;

        /** Grid channels. */
        channels: number;
    }

    namespace Grid {

        /** Properties of a Grid. */
        interface $Properties {

            /** Grid xMin */
            xMin?: (number|null);

            /** Grid xMax */
            xMax?: (number|null);

            /** Grid yMin */
            yMin?: (number|null);

            /** Grid yMax */
            yMax?: (number|null);

            /** Grid cellSize */
            cellSize?: (number|null);

            /** Grid width */
            width?: (number|null);

            /** Grid height */
            height?: (number|null);

            /** Grid channels */
            channels?: (number|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Grid. */
        type $Shape = heal.Grid.$Properties;
    }

    /** DType enum. */
    enum DType {

        /** DTYPE_UNSPECIFIED value */
        DTYPE_UNSPECIFIED = 0,

        /** little-endian IEEE binary32 */
        FLOAT32 = 1,

        /** little-endian IEEE binary16 */
        FLOAT16 = 2,

        /** symmetric: value = q * scale, q in [-127, 127] */
        INT8 = 3,

        /** issue 14. symmetric: value = q * scale, q in [-7, 7]; two per byte, element 2i in the low nibble (two's complement), an odd count's last high nibble 0 */
        INT4 = 4
    }

    /**
     * Properties of a Features.
     * @deprecated Use heal.Features.$Properties instead.
     */
    interface IFeatures extends heal.Features.$Properties {
    }

    /** Represents a Features. */
    class Features {

        /**
         * Constructs a new Features.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Features.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /**
         * Logical dense shape [channels, height, width]; must match the grid (with a learned codec, the
         * restored shape: data then holds Header.feature_codec.code_channels channels).
         */
        shape: number[];

        /** Features dtype. */
        dtype: heal.DType;

        /**
         * Channel-major: all transmitted cells of channel 0 (in increasing cell index), then channel 1...
         * Without a mask every cell is transmitted, so this is the dense [C, H, W] tensor.
         */
        data: Uint8Array;

        /**
         * INT8/INT4 only: one scale (per tensor) or one per channel (per code channel with a learned
         * codec). Empty for float dtypes.
         */
        scale: number[];

        /**
         * Issue 14, sparse messages only (optional): the value of each of the grid's channels at the
         * cells not sent (the sender's per-channel median of them), as shape[0] little-endian IEEE
         * binary16 values. The receiver puts it in those cells and fuses them; absent, they are left out.
         */
        fill: Uint8Array;
    }

    namespace Features {

        /** Properties of a Features. */
        interface $Properties {

            /**
             * Logical dense shape [channels, height, width]; must match the grid (with a learned codec, the
             * restored shape: data then holds Header.feature_codec.code_channels channels).
             */
            shape?: (number[]|null);

            /** Features dtype */
            dtype?: (heal.DType|null);

            /**
             * Channel-major: all transmitted cells of channel 0 (in increasing cell index), then channel 1...
             * Without a mask every cell is transmitted, so this is the dense [C, H, W] tensor.
             */
            data?: (Uint8Array|null);

            /**
             * INT8/INT4 only: one scale (per tensor) or one per channel (per code channel with a learned
             * codec). Empty for float dtypes.
             */
            scale?: (number[]|null);

            /**
             * Issue 14, sparse messages only (optional): the value of each of the grid's channels at the
             * cells not sent (the sender's per-channel median of them), as shape[0] little-endian IEEE
             * binary16 values. The receiver puts it in those cells and fuses them; absent, they are left out.
             */
            fill?: (Uint8Array|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Features. */
        type $Shape = heal.Features.$Properties;
    }

    /**
     * Properties of a SparseMask.
     * @deprecated Use heal.SparseMask.$Properties instead.
     */
    interface ISparseMask extends heal.SparseMask.$Properties {
    }

    /** Which cells the features cover (sparse messages). Cell index = row * width + column. */
    class SparseMask {

        /**
         * Constructs a new SparseMask.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.SparseMask.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** ceil(H*W/8) bytes, bit (i % 8) of byte (i / 8) set when cell i is transmitted; padding bits 0. */
        bitmask?: (Uint8Array|null);

        /** First value is the first cell index, each next one the (positive) gap to the previous. */
        deltas?: (heal.CellDeltas.$Properties|null);

        /**
         * Issue 14: alternating run lengths over the cell indices, starting with a run of cells not
         * sent (0 when cell 0 is sent), then sent, then not sent...; cells after the last run are not sent.
         */
        runs?: (heal.CellRuns.$Properties|null);

        /** SparseMask cells. */
        cells?: ("bitmask"|"deltas"|"runs");
    }

    namespace SparseMask {

        /** Properties of a SparseMask. */
        interface $Properties {

            /** ceil(H*W/8) bytes, bit (i % 8) of byte (i / 8) set when cell i is transmitted; padding bits 0. */
            bitmask?: (Uint8Array|null);

            /** First value is the first cell index, each next one the (positive) gap to the previous. */
            deltas?: (heal.CellDeltas.$Properties|null);

            /**
             * Issue 14: alternating run lengths over the cell indices, starting with a run of cells not
             * sent (0 when cell 0 is sent), then sent, then not sent...; cells after the last run are not sent.
             */
            runs?: (heal.CellRuns.$Properties|null);

            /** SparseMask cells */
            cells?: ("bitmask"|"deltas"|"runs");

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Narrowed shape of a SparseMask. */
        type $Shape = {
          bitmask?: Uint8Array|null;
          deltas?: heal.CellDeltas.$Shape|null;
          runs?: heal.CellRuns.$Shape|null;
          $unknowns?: Uint8Array[];
        } & (
          ({ cells?: undefined; bitmask?: null; deltas?: null; runs?: null }|{ cells?: "bitmask"; bitmask: Uint8Array; deltas?: null; runs?: null }|{ cells?: "deltas"; bitmask?: null; deltas: heal.CellDeltas.$Shape; runs?: null }|{ cells?: "runs"; bitmask?: null; deltas?: null; runs: heal.CellRuns.$Shape })
        );
    }

    /**
     * Properties of a CellRuns.
     * @deprecated Use heal.CellRuns.$Properties instead.
     */
    interface ICellRuns extends heal.CellRuns.$Properties {
    }

    /** Represents a CellRuns. */
    class CellRuns {

        /**
         * Constructs a new CellRuns.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.CellRuns.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** CellRuns value. */
        value: number[];
    }

    namespace CellRuns {

        /** Properties of a CellRuns. */
        interface $Properties {

            /** CellRuns value */
            value?: (number[]|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a CellRuns. */
        type $Shape = heal.CellRuns.$Properties;
    }

    /**
     * Properties of a CellDeltas.
     * @deprecated Use heal.CellDeltas.$Properties instead.
     */
    interface ICellDeltas extends heal.CellDeltas.$Properties {
    }

    /** Represents a CellDeltas. */
    class CellDeltas {

        /**
         * Constructs a new CellDeltas.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.CellDeltas.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** CellDeltas value. */
        value: number[];
    }

    namespace CellDeltas {

        /** Properties of a CellDeltas. */
        interface $Properties {

            /** CellDeltas value */
            value?: (number[]|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a CellDeltas. */
        type $Shape = heal.CellDeltas.$Properties;
    }

    /**
     * Properties of a Detections.
     * @deprecated Use heal.Detections.$Properties instead.
     */
    interface IDetections extends heal.Detections.$Properties {
    }

    /** Late fusion: the sender's own detections in its LiDAR frame. */
    class Detections {

        /**
         * Constructs a new Detections.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Detections.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** N boxes x 7 values [x, y, z, h, w, l, yaw] (heal's Box7, yaw in radians). */
        boxes: number[];

        /** N confidences in [0, 1]. */
        scores: number[];
    }

    namespace Detections {

        /** Properties of a Detections. */
        interface $Properties {

            /** N boxes x 7 values [x, y, z, h, w, l, yaw] (heal's Box7, yaw in radians). */
            boxes?: (number[]|null);

            /** N confidences in [0, 1]. */
            scores?: (number[]|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Detections. */
        type $Shape = heal.Detections.$Properties;
    }

    /**
     * Properties of a CollabMessage.
     * @deprecated Use heal.CollabMessage.$Properties instead.
     */
    interface ICollabMessage extends heal.CollabMessage.$Properties {
    }

    /** Represents a CollabMessage. */
    class CollabMessage {

        /**
         * Constructs a new CollabMessage.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.CollabMessage.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** CollabMessage header. */
        header?: (heal.Header.$Properties|null);

        /** CollabMessage pose. */
        pose?: (heal.Pose.$Properties|null);

        /** CollabMessage grid. */
        grid?: (heal.Grid.$Properties|null);

        /** CollabMessage features. */
        features?: (heal.Features.$Properties|null);

        /** Absent: dense (every cell transmitted). */
        mask?: (heal.SparseMask.$Properties|null);

        /** CollabMessage detections. */
        detections?: (heal.Detections.$Properties|null);
    }

    namespace CollabMessage {

        /** Properties of a CollabMessage. */
        interface $Properties {

            /** CollabMessage header */
            header?: (heal.Header.$Properties|null);

            /** CollabMessage pose */
            pose?: (heal.Pose.$Properties|null);

            /** CollabMessage grid */
            grid?: (heal.Grid.$Properties|null);

            /** CollabMessage features */
            features?: (heal.Features.$Properties|null);

            /** Absent: dense (every cell transmitted). */
            mask?: (heal.SparseMask.$Properties|null);

            /** CollabMessage detections */
            detections?: (heal.Detections.$Properties|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a CollabMessage. */
        type $Shape = {
          header?: heal.Header.$Shape|null;
          pose?: heal.Pose.$Shape|null;
          grid?: heal.Grid.$Shape|null;
          features?: heal.Features.$Shape|null;
          mask?: heal.SparseMask.$Shape|null;
          detections?: heal.Detections.$Shape|null;
          $unknowns?: Uint8Array[];
        };
    }

    /**
     * Properties of a CertificateBody.
     * @deprecated Use heal.CertificateBody.$Properties instead.
     */
    interface ICertificateBody extends heal.CertificateBody.$Properties {
    }

    /** What a certificate binds: the signature over these exact bytes is the authority's. */
    class CertificateBody {

        /**
         * Constructs a new CertificateBody.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.CertificateBody.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** Certificate format version (currently 1). */
        version: number;

        /** CertificateBody agentId. */
        agentId: string;

        /** CertificateBody agentType. */
        agentType: string;

        /** Ed25519 public key of the agent, 32 raw bytes. */
        publicKey: Uint8Array;

        /** Validity period, Unix time in milliseconds: valid from not_before_ms to not_after_ms inclusive. */
        notBeforeMs: (number|Long);

        /** CertificateBody notAfterMs. */
        notAfterMs: (number|Long);

        /** First 8 bytes of SHA-256 of the issuing authority's raw Ed25519 public key. */
        issuer: Uint8Array;
    }

    namespace CertificateBody {

        /** Properties of a CertificateBody. */
        interface $Properties {

            /** Certificate format version (currently 1). */
            version?: (number|null);

            /** CertificateBody agentId */
            agentId?: (string|null);

            /** CertificateBody agentType */
            agentType?: (string|null);

            /** Ed25519 public key of the agent, 32 raw bytes. */
            publicKey?: (Uint8Array|null);

            /** Validity period, Unix time in milliseconds: valid from not_before_ms to not_after_ms inclusive. */
            notBeforeMs?: (number|Long|null);

            /** CertificateBody notAfterMs */
            notAfterMs?: (number|Long|null);

            /** First 8 bytes of SHA-256 of the issuing authority's raw Ed25519 public key. */
            issuer?: (Uint8Array|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a CertificateBody. */
        type $Shape = heal.CertificateBody.$Properties;
    }

    /**
     * Properties of a Certificate.
     * @deprecated Use heal.Certificate.$Properties instead.
     */
    interface ICertificate extends heal.Certificate.$Properties {
    }

    /** Represents a Certificate. */
    class Certificate {

        /**
         * Constructs a new Certificate.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.Certificate.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** An encoded CertificateBody. */
        body: Uint8Array;

        /** Ed25519 signature by the issuer over "heal-cert-v1\0" followed by body. */
        signature: Uint8Array;
    }

    namespace Certificate {

        /** Properties of a Certificate. */
        interface $Properties {

            /** An encoded CertificateBody. */
            body?: (Uint8Array|null);

            /** Ed25519 signature by the issuer over "heal-cert-v1\0" followed by body. */
            signature?: (Uint8Array|null);

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Shape of a Certificate. */
        type $Shape = heal.Certificate.$Properties;
    }

    /**
     * Properties of a SignedCollabMessage.
     * @deprecated Use heal.SignedCollabMessage.$Properties instead.
     */
    interface ISignedCollabMessage extends heal.SignedCollabMessage.$Properties {
    }

    /** A CollabMessage as it crosses the radio with its sender's signature. */
    class SignedCollabMessage {

        /**
         * Constructs a new SignedCollabMessage.
         * @param [properties] Properties to set
         */
        constructor(properties?: heal.SignedCollabMessage.$Properties);

        /** Unknown fields preserved while decoding when enabled */
        $unknowns?: Uint8Array[];

        /** An encoded CollabMessage; only parsed after the signature checks out. */
        payload: Uint8Array;

        /** Sender's clock when it signed, Unix time in milliseconds (checked against the ego's window). */
        generationTimeMs: (number|Long);

        /** The sender's whole certificate. */
        certificate?: (heal.Certificate.$Properties|null);

        /** First 8 bytes of SHA-256 of an encoded Certificate the ego already holds. */
        certificateDigest?: (Uint8Array|null);

        /**
         * Ed25519 signature by the sender over "heal-msg-v1\0", generation_time_ms as 8 bytes big-endian,
         * then the SHA-256 of payload.
         */
        signature: Uint8Array;

        /** SignedCollabMessage signer. */
        signer?: ("certificate"|"certificateDigest");
    }

    namespace SignedCollabMessage {

        /** Properties of a SignedCollabMessage. */
        interface $Properties {

            /** An encoded CollabMessage; only parsed after the signature checks out. */
            payload?: (Uint8Array|null);

            /** Sender's clock when it signed, Unix time in milliseconds (checked against the ego's window). */
            generationTimeMs?: (number|Long|null);

            /** The sender's whole certificate. */
            certificate?: (heal.Certificate.$Properties|null);

            /** First 8 bytes of SHA-256 of an encoded Certificate the ego already holds. */
            certificateDigest?: (Uint8Array|null);

            /**
             * Ed25519 signature by the sender over "heal-msg-v1\0", generation_time_ms as 8 bytes big-endian,
             * then the SHA-256 of payload.
             */
            signature?: (Uint8Array|null);

            /** SignedCollabMessage signer */
            signer?: ("certificate"|"certificateDigest");

            /** Unknown fields preserved while decoding when enabled */
            $unknowns?: Uint8Array[];
        }

        /** Narrowed shape of a SignedCollabMessage. */
        type $Shape = {
          payload?: Uint8Array|null;
          generationTimeMs?: number|Long|null;
          certificate?: heal.Certificate.$Shape|null;
          certificateDigest?: Uint8Array|null;
          signature?: Uint8Array|null;
          $unknowns?: Uint8Array[];
        } & (
          ({ signer?: undefined; certificate?: null; certificateDigest?: null }|{ signer?: "certificate"; certificate: heal.Certificate.$Shape; certificateDigest?: null }|{ signer?: "certificateDigest"; certificate?: null; certificateDigest: Uint8Array })
        );
    }
}

/**
 * Sizes of MQTT PUBLISH packets, so the daemon never sends one the broker refuses: a broker
 * disconnects a client that exceeds its Maximum Packet Size, and mqtt.js would resend the same
 * stored QoS 1 packet on every reconnect.
 */

/** Bytes of MQTT's variable-length integer. */
function varIntBytes(value: number): number {
  if (value < 128) return 1;
  if (value < 16_384) return 2;
  if (value < 2_097_152) return 3;
  return 4;
}

export interface PublishShape {
  topic: string;
  payloadBytes: number;
  qos: 0 | 1;
  protocolVersion: 4 | 5;
  correlationBytes?: number;
}

/** The whole PUBLISH packet on the wire, fixed header included. */
export function publishPacketBytes(shape: PublishShape): number {
  let remaining = 2 + Buffer.byteLength(shape.topic) + (shape.qos > 0 ? 2 : 0) + shape.payloadBytes;
  if (shape.protocolVersion === 5) {
    // Property id (1), two-byte length and the bytes of Correlation Data.
    const properties = shape.correlationBytes === undefined ? 0 : 3 + shape.correlationBytes;
    remaining += varIntBytes(properties) + properties;
  }
  return 1 + varIntBytes(remaining) + remaining;
}

/** Room beyond a request's payload for its topic and properties (response topic, correlation data). */
export const REQUEST_PACKET_HEADROOM_BYTES = 16_384;

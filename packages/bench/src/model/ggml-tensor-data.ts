import type { SeededRandom } from "./seeded-random.js";

export type GgmlTensorType = "F32" | "F16" | "Q4_0" | "Q8_0";

interface GgmlTypeTraits {
  /** The ggml_type id written in the tensor info. */
  readonly id: number;
  /** Elements per block: quantized rows must be a whole number of blocks. */
  readonly blockElements: number;
  readonly blockBytes: number;
}

export const GGML_TYPE_TRAITS: Readonly<Record<GgmlTensorType, GgmlTypeTraits>> = {
  F32: { id: 0, blockElements: 1, blockBytes: 4 },
  F16: { id: 1, blockElements: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockElements: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockElements: 32, blockBytes: 34 },
};

export function tensorByteSize(type: GgmlTensorType, elementCount: number): number {
  const traits = GGML_TYPE_TRAITS[type];
  return (elementCount / traits.blockElements) * traits.blockBytes;
}

/** Where a tensor's values come from. Rows are runs of `shape[0]` contiguous elements. */
export type TensorData =
  | {
      kind: "random";
      /** Values are uniform in [-amplitude, amplitude]; quantized blocks use scale amplitude/8 (Q4_0) or /127 (Q8_0). */
      amplitude: number;
      /** Rows [from, to) are written as zeros, e.g. to keep special tokens out of an output matrix. */
      zeroRows?: { from: number; to: number };
    }
  | { kind: "constant"; value: number }
  /** Explicit values, quantized the way ggml's reference quantizers do it. */
  | { kind: "values"; values: Float32Array };

/** Writes the bytes of elements [firstElement, firstElement + count) into `out`; returns the byte count. */
export type TensorChunkEncoder = (out: Buffer, firstElement: number, count: number) => number;

export function createTensorChunkEncoder(
  type: GgmlTensorType,
  rowLength: number,
  data: TensorData,
  random: SeededRandom,
): TensorChunkEncoder {
  if (data.kind === "random" && type === "Q4_0")
    return randomBlockEncoder(Q4_0_FORMAT, rowLength, data, random);
  if (data.kind === "random" && type === "Q8_0")
    return randomBlockEncoder(Q8_0_FORMAT, rowLength, data, random);
  return valuesEncoder(type, rowLength, data, random);
}

function zeroElementRange(rowLength: number, data: TensorData): { from: number; to: number } {
  if (data.kind !== "random" || data.zeroRows === undefined) return { from: 0, to: 0 };
  return { from: data.zeroRows.from * rowLength, to: data.zeroRows.to * rowLength };
}

/** A random quantized block: an f16 scale, then `words` 32-bit words of random quants. */
interface RandomBlockFormat {
  /** Bytes per 32-element block: the 2-byte scale and the quants. */
  blockBytes: number;
  /** Random 32-bit words per block. */
  words: number;
  /** amplitude / scaleDivisor is the block's scale (the largest quant maps to the amplitude). */
  scaleDivisor: number;
  /** Maps each random byte to a stored byte. */
  byte: (value: number) => number;
}

const Q4_0_FORMAT: RandomBlockFormat = { blockBytes: 18, words: 4, scaleDivisor: 8, byte: (value) => value };
const Q8_0_FORMAT: RandomBlockFormat = {
  blockBytes: 34,
  words: 8,
  scaleDivisor: 127,
  // -128 (0x80) never comes out of ggml's quantizer; some int8 dot-product kernels take abs() of it.
  byte: (value) => (value === 0x80 ? 0x81 : value),
};

// Random quantized blocks are generated directly (no float round trip): this is the hot path for
// TinyLlama-sized files, about a billion elements.
function randomBlockEncoder(
  format: RandomBlockFormat,
  rowLength: number,
  data: TensorData & { kind: "random" },
  random: SeededRandom,
): TensorChunkEncoder {
  const { blockBytes, words, byte } = format;
  const scale = createFloat16Encoder()(data.amplitude / format.scaleDivisor);
  const zero = zeroElementRange(rowLength, data);
  return (out, firstElement, count) => {
    const blocks = count / 32;
    for (let block = 0; block < blocks; block++) {
      const element = firstElement + block * 32;
      let offset = block * blockBytes;
      if (element >= zero.from && element < zero.to) {
        out.fill(0, offset, offset + blockBytes);
        continue;
      }
      out[offset++] = scale & 0xff;
      out[offset++] = scale >>> 8;
      for (let word = 0; word < words; word++) {
        const bits = random.nextUint32();
        out[offset++] = byte(bits & 0xff);
        out[offset++] = byte((bits >>> 8) & 0xff);
        out[offset++] = byte((bits >>> 16) & 0xff);
        out[offset++] = byte(bits >>> 24);
      }
    }
    return blocks * blockBytes;
  };
}

/** Produces float values first, then stores them as F32/F16 or quantizes them block by block. */
function valuesEncoder(
  type: GgmlTensorType,
  rowLength: number,
  data: TensorData,
  random: SeededRandom,
): TensorChunkEncoder {
  const toFloat16 = createFloat16Encoder();
  const zero = zeroElementRange(rowLength, data);
  let scratch = new Float32Array(0);
  const fillValues = (values: Float32Array, firstElement: number) => {
    if (data.kind === "constant") values.fill(data.value);
    else if (data.kind === "values")
      values.set(data.values.subarray(firstElement, firstElement + values.length));
    else {
      for (let index = 0; index < values.length; index++) {
        const element = firstElement + index;
        values[index] =
          element >= zero.from && element < zero.to ? 0 : (random.nextFloat() * 2 - 1) * data.amplitude;
      }
    }
  };
  return (out, firstElement, count) => {
    if (scratch.length < count) scratch = new Float32Array(count);
    const values = scratch.subarray(0, count);
    fillValues(values, firstElement);
    switch (type) {
      case "F32":
        for (let index = 0; index < count; index++) out.writeFloatLE(values[index]!, index * 4);
        return count * 4;
      case "F16":
        for (let index = 0; index < count; index++) out.writeUInt16LE(toFloat16(values[index]!), index * 2);
        return count * 2;
      case "Q4_0":
        for (let block = 0; block < count / 32; block++)
          quantizeQ4_0Block(values, block * 32, out, block * 18, toFloat16);
        return (count / 32) * 18;
      case "Q8_0":
        for (let block = 0; block < count / 32; block++)
          quantizeQ8_0Block(values, block * 32, out, block * 34, toFloat16);
        return (count / 32) * 34;
    }
  };
}

/** ggml's quantize_row_q4_0_ref for one block: d = max/-8, nibble = min(15, trunc(x/d + 8.5)). */
export function quantizeQ4_0Block(
  source: Float32Array,
  sourceOffset: number,
  out: Buffer,
  outOffset: number,
  toFloat16: (value: number) => number,
): void {
  let amax = 0;
  let max = 0;
  for (let index = 0; index < 32; index++) {
    const value = source[sourceOffset + index]!;
    if (amax < Math.abs(value)) {
      amax = Math.abs(value);
      max = value;
    }
  }
  const d = Math.fround(max / -8);
  const inverse = d === 0 ? 0 : Math.fround(1 / d);
  out.writeUInt16LE(toFloat16(d), outOffset);
  for (let index = 0; index < 16; index++) {
    const low = Math.min(
      15,
      Math.trunc(Math.fround(Math.fround(source[sourceOffset + index]! * inverse) + 8.5)),
    );
    const high = Math.min(
      15,
      Math.trunc(Math.fround(Math.fround(source[sourceOffset + 16 + index]! * inverse) + 8.5)),
    );
    out[outOffset + 2 + index] = low | (high << 4);
  }
}

/** ggml's quantize_row_q8_0_ref for one block: d = amax/127, q = round(x/d). */
export function quantizeQ8_0Block(
  source: Float32Array,
  sourceOffset: number,
  out: Buffer,
  outOffset: number,
  toFloat16: (value: number) => number,
): void {
  let amax = 0;
  for (let index = 0; index < 32; index++) amax = Math.max(amax, Math.abs(source[sourceOffset + index]!));
  const d = Math.fround(amax / 127);
  const inverse = d === 0 ? 0 : Math.fround(1 / d);
  out.writeUInt16LE(toFloat16(d), outOffset);
  for (let index = 0; index < 32; index++) {
    const scaled = Math.fround(source[sourceOffset + index]! * inverse);
    // roundf rounds halves away from zero; Math.round would round -2.5 to -2.
    out.writeInt8(Math.sign(scaled) * Math.round(Math.abs(scaled)), outOffset + 2 + index);
  }
}

/**
 * Returns a float -> IEEE half bits converter (round to nearest even, like F16C). The scratch
 * arrays live in the closure so each writer owns its own.
 */
export function createFloat16Encoder(): (value: number) => number {
  const float = new Float32Array(1);
  const bits = new Uint32Array(float.buffer);
  return (value) => {
    float[0] = value;
    const x = bits[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
    const halfExponent = exponent - 127 + 15;
    if (halfExponent >= 31) return sign | 0x7c00;
    if (halfExponent <= 0) {
      if (halfExponent < -10) return sign;
      mantissa |= 0x800000;
      const shift = 14 - halfExponent;
      let half = mantissa >>> shift;
      const rest = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
      return sign | half;
    }
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    let half = (halfExponent << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  };
}

export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

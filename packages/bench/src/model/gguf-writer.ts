import { type FileHandle, open, rm } from "node:fs/promises";
import {
  createTensorChunkEncoder,
  GGML_TYPE_TRAITS,
  type GgmlTensorType,
  type TensorData,
  tensorByteSize,
} from "./ggml-tensor-data.js";
import { SeededRandom } from "./seeded-random.js";

export type { GgmlTensorType, TensorData } from "./ggml-tensor-data.js";

export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
type GgufBigIntType = "u64" | "i64";
export type GgufScalarType = GgufNumberType | GgufBigIntType | "bool" | "string";

export type GgufArrayValue =
  | { type: "array"; itemType: GgufNumberType; values: readonly number[] }
  | { type: "array"; itemType: GgufBigIntType; values: readonly (number | bigint)[] }
  | { type: "array"; itemType: "bool"; values: readonly boolean[] }
  | { type: "array"; itemType: "string"; values: readonly string[] };

export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | GgufArrayValue;

/** Short constructors, e.g. `{ "llama.block_count": gguf.u32(22) }`. */
export const gguf = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  u64: (value: number | bigint): GgufValue => ({ type: "u64", value }),
  i64: (value: number | bigint): GgufValue => ({ type: "i64", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  string: (value: string): GgufValue => ({ type: "string", value }),
  array: (itemType: GgufScalarType, values: readonly (number | bigint | boolean | string)[]): GgufValue =>
    ({ type: "array", itemType, values }) as GgufArrayValue,
};

const VALUE_TYPE_IDS: Readonly<Record<GgufScalarType | "array", number>> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};

export interface GgufTensor {
  /** At most 63 bytes (GGML_MAX_NAME). */
  name: string;
  /** ggml order: shape[0] is the contiguous dimension (ne0); 1 to 4 dimensions. */
  shape: readonly number[];
  type: GgmlTensorType;
  data: TensorData;
}

export interface GgufWriteProgress {
  writtenBytes: number;
  totalBytes: number;
}

export interface GgufWriteOptions {
  path: string;
  /** Written in insertion order. */
  metadata: Readonly<Record<string, GgufValue>>;
  /** Written in this order, each at the next 32-byte aligned offset of the data section. */
  tensors: readonly GgufTensor[];
  /** Seed of the PRNG behind `random` tensor data; same seed, same bytes. */
  seed?: number;
  onProgress?: (progress: GgufWriteProgress) => void;
  signal?: AbortSignal;
}

export interface GgufLayout {
  /** Header, metadata, tensor infos and padding: everything before the data section. */
  header: Buffer;
  /** Offsets of the tensors relative to the data section, as declared in the tensor infos. */
  tensorOffsets: number[];
  totalBytes: number;
}

const CHUNK_BYTES = 1 << 20;

/** Streams a GGUF v3 file tensor by tensor; removes the partial file if anything fails. */
export async function writeGgufFile(options: GgufWriteOptions): Promise<GgufLayout> {
  const layout = planGgufLayout(options.metadata, options.tensors);
  const handle = await open(options.path, "w");
  try {
    await writeTensorData(handle, layout, options);
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(options.path, { force: true });
    throw error;
  }
  return layout;
}

/** Encodes everything before the data section and computes where each tensor goes. */
export function planGgufLayout(
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly GgufTensor[],
): GgufLayout {
  validateTensors(tensors);
  const bytes = new ByteWriter();
  bytes.raw(Buffer.from("GGUF", "ascii"));
  bytes.u32(GGUF_VERSION);
  bytes.u64(tensors.length);
  const entries = Object.entries(metadata);
  bytes.u64(entries.length);
  for (const [key, value] of entries) {
    bytes.string(key);
    bytes.u32(VALUE_TYPE_IDS[value.type]);
    writeValue(bytes, value);
  }
  const tensorOffsets: number[] = [];
  let dataBytes = 0;
  for (const tensor of tensors) {
    tensorOffsets.push(dataBytes);
    bytes.string(tensor.name);
    bytes.u32(tensor.shape.length);
    for (const dimension of tensor.shape) bytes.u64(dimension);
    bytes.u32(GGML_TYPE_TRAITS[tensor.type].id);
    bytes.u64(dataBytes);
    dataBytes = alignUp(dataBytes + tensorByteSize(tensor.type, elementCount(tensor.shape)));
  }
  bytes.zeros(alignUp(bytes.length) - bytes.length);
  const header = bytes.toBuffer();
  return { header, tensorOffsets, totalBytes: header.length + dataBytes };
}

async function writeTensorData(handle: FileHandle, layout: GgufLayout, options: GgufWriteOptions) {
  const random = new SeededRandom(options.seed ?? 1);
  let position = layout.header.length;
  let pending = writeFully(handle, layout.header, layout.header.length, 0);
  const report = () => options.onProgress?.({ writtenBytes: position, totalBytes: layout.totalBytes });
  // Two buffers: the next chunk is generated while the previous one is being written.
  const buffers = [Buffer.alloc(CHUNK_BYTES), Buffer.alloc(CHUNK_BYTES)];
  let turn = 0;
  try {
    for (const tensor of options.tensors) {
      const traits = GGML_TYPE_TRAITS[tensor.type];
      const encode = createTensorChunkEncoder(tensor.type, tensor.shape[0]!, tensor.data, random);
      const total = elementCount(tensor.shape);
      const chunkElements = Math.floor(CHUNK_BYTES / traits.blockBytes) * traits.blockElements;
      for (let first = 0; first < total; first += chunkElements) {
        const buffer = buffers[turn++ % 2]!;
        const length = encode(buffer, first, Math.min(chunkElements, total - first));
        await pending;
        options.signal?.throwIfAborted();
        pending = writeFully(handle, buffer, length, position);
        position += length;
        report();
      }
      const padding = alignUp(position) - position;
      if (padding > 0) {
        await pending;
        pending = writeFully(handle, Buffer.alloc(padding), padding, position);
        position += padding;
      }
    }
  } finally {
    // Never leave a write in flight when the caller closes the file.
    await pending.catch(() => undefined);
  }
  await pending;
  if (position !== layout.totalBytes)
    throw new Error(`wrote ${position} bytes, planned ${layout.totalBytes}`);
  report();
}

async function writeFully(handle: FileHandle, buffer: Buffer, length: number, position: number) {
  let written = 0;
  while (written < length) {
    const { bytesWritten } = await handle.write(buffer, written, length - written, position + written);
    written += bytesWritten;
  }
}

function validateTensors(tensors: readonly GgufTensor[]): void {
  const names = new Set<string>();
  for (const tensor of tensors) {
    const where = `tensor ${JSON.stringify(tensor.name)}`;
    if (names.has(tensor.name)) throw new Error(`${where}: duplicate name`);
    names.add(tensor.name);
    if (Buffer.byteLength(tensor.name) > 63) throw new Error(`${where}: name longer than 63 bytes`);
    if (tensor.shape.length < 1 || tensor.shape.length > 4)
      throw new Error(`${where}: needs 1 to 4 dimensions`);
    if (!tensor.shape.every((dimension) => Number.isSafeInteger(dimension) && dimension > 0)) {
      throw new Error(`${where}: dimensions must be positive integers`);
    }
    const blockElements = GGML_TYPE_TRAITS[tensor.type].blockElements;
    if (tensor.shape[0]! % blockElements !== 0) {
      throw new Error(`${where}: ${tensor.type} rows must be a multiple of ${blockElements} elements`);
    }
    if (tensor.data.kind === "values" && tensor.data.values.length !== elementCount(tensor.shape)) {
      throw new Error(
        `${where}: ${tensor.data.values.length} values for ${elementCount(tensor.shape)} elements`,
      );
    }
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dimension) => product * dimension, 1);
}

function alignUp(offset: number): number {
  return Math.ceil(offset / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
}

function writeValue(bytes: ByteWriter, value: GgufValue): void {
  if (value.type !== "array") {
    writeScalar(bytes, value.type, value.value);
    return;
  }
  bytes.u32(VALUE_TYPE_IDS[value.itemType]);
  bytes.u64(value.values.length);
  for (const item of value.values) writeScalar(bytes, value.itemType, item);
}

function writeScalar(
  bytes: ByteWriter,
  type: GgufScalarType,
  value: number | bigint | boolean | string,
): void {
  const mismatch = () => new TypeError(`GGUF ${type} value cannot be ${typeof value} ${String(value)}`);
  if (type === "string") {
    if (typeof value !== "string") throw mismatch();
    bytes.string(value);
  } else if (type === "bool") {
    if (typeof value !== "boolean") throw mismatch();
    bytes.u8(value ? 1 : 0);
  } else if (type === "u64" || type === "i64") {
    if (typeof value !== "number" && typeof value !== "bigint") throw mismatch();
    if (type === "u64") bytes.u64(value);
    else bytes.i64(value);
  } else {
    if (typeof value !== "number") throw mismatch();
    bytes[type](value);
  }
}

/** Little-endian byte builder that grows as needed; Buffer's write methods range-check the values. */
class ByteWriter {
  private buffer = Buffer.alloc(64 * 1024);
  length = 0;

  private reserve(size: number): number {
    if (this.length + size > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + size));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    const offset = this.length;
    this.length += size;
    return offset;
  }

  // reserve() may replace the buffer, so it must run before `this.buffer` is read.
  raw(data: Buffer): void {
    const offset = this.reserve(data.length);
    data.copy(this.buffer, offset);
  }
  zeros(count: number): void {
    const offset = this.reserve(count);
    this.buffer.fill(0, offset, offset + count);
  }
  u8(value: number): void {
    const offset = this.reserve(1);
    this.buffer.writeUInt8(value, offset);
  }
  i8(value: number): void {
    const offset = this.reserve(1);
    this.buffer.writeInt8(value, offset);
  }
  u16(value: number): void {
    const offset = this.reserve(2);
    this.buffer.writeUInt16LE(value, offset);
  }
  i16(value: number): void {
    const offset = this.reserve(2);
    this.buffer.writeInt16LE(value, offset);
  }
  u32(value: number): void {
    const offset = this.reserve(4);
    this.buffer.writeUInt32LE(value, offset);
  }
  i32(value: number): void {
    const offset = this.reserve(4);
    this.buffer.writeInt32LE(value, offset);
  }
  u64(value: number | bigint): void {
    const offset = this.reserve(8);
    this.buffer.writeBigUInt64LE(BigInt(value), offset);
  }
  i64(value: number | bigint): void {
    const offset = this.reserve(8);
    this.buffer.writeBigInt64LE(BigInt(value), offset);
  }
  f32(value: number): void {
    const offset = this.reserve(4);
    this.buffer.writeFloatLE(value, offset);
  }
  f64(value: number): void {
    const offset = this.reserve(8);
    this.buffer.writeDoubleLE(value, offset);
  }
  /** u64 byte length, then UTF-8 bytes without a terminator. */
  string(value: string): void {
    const encoded = Buffer.from(value, "utf8");
    this.u64(encoded.length);
    this.raw(encoded);
  }
  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

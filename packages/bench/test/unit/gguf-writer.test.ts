import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GgufFileInfo, readGgufFileInfo } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFloat16Encoder, float16BitsToNumber } from "../../src/model/ggml-tensor-data.js";
import {
  type GgufTensor,
  type GgufValue,
  gguf,
  planGgufLayout,
  writeGgufFile,
} from "../../src/model/gguf-writer.js";

const METADATA: Record<string, GgufValue> = {
  "general.architecture": gguf.string("llama"),
  "test.u8": gguf.u8(200),
  "test.i8": gguf.i8(-100),
  "test.u16": gguf.u16(60000),
  "test.i16": gguf.i16(-30000),
  "test.u32": gguf.u32(4000000000),
  "test.i32": gguf.i32(-2000000000),
  "test.f32": gguf.f32(0.5),
  "test.bool": gguf.bool(true),
  "test.string": gguf.string("héllo ▁wörld"),
  "test.u64": gguf.u64(2n ** 40n),
  "test.i64": gguf.i64(-(2n ** 40n)),
  "test.f64": gguf.f64(Math.PI),
  "test.strings": gguf.array("string", ["a", "bc", ""]),
  "test.i32s": gguf.array("i32", [1, -2, 3]),
  "test.f32s": gguf.array("f32", [0.25, -1.5]),
  "test.bools": gguf.array("bool", [true, false]),
};

/** 64 values spanning both signs, so every Q4_0/Q8_0 block has a non-trivial scale. */
const RAMP = Float32Array.from({ length: 64 }, (_, index) => (index - 31.5) / 40);

const TENSORS: GgufTensor[] = [
  {
    name: "norm.weight",
    shape: [3],
    type: "F32",
    data: { kind: "values", values: Float32Array.of(1, -2, 0.125) },
  },
  {
    name: "half.weight",
    shape: [4],
    type: "F16",
    data: { kind: "values", values: Float32Array.of(1, -2, 0.5, 65504) },
  },
  { name: "q4.weight", shape: [32, 2], type: "Q4_0", data: { kind: "values", values: RAMP } },
  { name: "q8.weight", shape: [32, 2], type: "Q8_0", data: { kind: "values", values: RAMP } },
  { name: "random.weight", shape: [64, 4], type: "Q4_0", data: { kind: "random", amplitude: 0.064 } },
];

function lookup(metadata: unknown, dotted: string): unknown {
  return dotted.split(".").reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], metadata);
}

describe("writeGgufFile", () => {
  let directory: string;
  let path: string;
  let bytes: Buffer;
  let info: GgufFileInfo;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), "gguf-writer-"));
    path = join(directory, "test.gguf");
    await writeGgufFile({ path, metadata: METADATA, tensors: TENSORS, seed: 7 });
    bytes = await readFile(path);
    info = await readGgufFileInfo(path, { logWarnings: false });
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("starts with the GGUF v3 header and counts", () => {
    expect(bytes.subarray(0, 4).toString("ascii")).toBe("GGUF");
    expect(bytes.readUInt32LE(4)).toBe(3);
    expect(bytes.readBigUInt64LE(8)).toBe(BigInt(TENSORS.length));
    expect(bytes.readBigUInt64LE(16)).toBe(BigInt(Object.keys(METADATA).length));
    // First key: u64 length, the key, u32 type 8 (string), then the value.
    expect(bytes.readBigUInt64LE(24)).toBe(20n);
    expect(bytes.subarray(32, 52).toString()).toBe("general.architecture");
    expect(bytes.readUInt32LE(52)).toBe(8);
    expect(bytes.readBigUInt64LE(56)).toBe(5n);
    expect(bytes.subarray(64, 69).toString()).toBe("llama");
  });

  it("reads back every metadata type through node-llama-cpp", () => {
    const expected: Record<string, unknown> = {
      "general.architecture": "llama",
      "test.u8": 200,
      "test.i8": -100,
      "test.u16": 60000,
      "test.i16": -30000,
      "test.u32": 4000000000,
      "test.i32": -2000000000,
      "test.f32": 0.5,
      "test.bool": true,
      "test.string": "héllo ▁wörld",
      "test.u64": 2 ** 40,
      "test.i64": -(2 ** 40),
      "test.f64": Math.PI,
      "test.strings": ["a", "bc", ""],
      "test.i32s": [1, -2, 3],
      "test.f32s": [0.25, -1.5],
      "test.bools": [true, false],
    };
    for (const [key, value] of Object.entries(expected)) {
      const actual = lookup(info.metadata, key);
      expect(typeof actual === "bigint" ? Number(actual) : actual, key).toEqual(value);
    }
  });

  it("declares tensors at 32-byte aligned offsets after an aligned header", () => {
    const dataStart = info.infoEndOffset!;
    expect(dataStart % 32).toBe(0);
    expect(info.tensorInfo!.map((tensor) => [tensor.name, tensor.dimensions, tensor.ggmlType])).toEqual([
      ["norm.weight", [3], 0],
      ["half.weight", [4], 1],
      ["q4.weight", [32, 2], 2],
      ["q8.weight", [32, 2], 8],
      ["random.weight", [64, 4], 2],
    ]);
    // F32 3 x 4 = 12 -> 32; F16 4 x 2 = 8 -> 32; Q4_0 2 blocks x 18 = 36 -> 64; Q8_0 2 x 34 = 68 -> 96.
    expect(info.tensorInfo!.map((tensor) => Number(tensor.offset))).toEqual([0, 32, 64, 128, 224]);
    // Q4_0 [64, 4]: 8 blocks x 18 = 144 bytes, padded to 160.
    expect(bytes.length).toBe(dataStart + 224 + 160);
    expect(planGgufLayout(METADATA, TENSORS).totalBytes).toBe(bytes.length);
    expect(bytes.subarray(dataStart + 12, dataStart + 32).every((byte) => byte === 0)).toBe(true);
  });

  it("stores F32 and F16 values at the declared offsets", () => {
    const data = (index: number) => info.infoEndOffset! + Number(info.tensorInfo![index]!.offset);
    expect([0, 1, 2].map((index) => bytes.readFloatLE(data(0) + index * 4))).toEqual([1, -2, 0.125]);
    expect([0, 1, 2, 3].map((index) => bytes.readUInt16LE(data(1) + index * 2))).toEqual([
      0x3c00, 0xc000, 0x3800, 0x7bff,
    ]);
  });

  it("quantizes Q4_0 and Q8_0 blocks close to the source values", () => {
    const q4 = info.infoEndOffset! + 64;
    const q8 = info.infoEndOffset! + 128;
    for (let block = 0; block < 2; block++) {
      const q4Block = q4 + block * 18;
      const q4Scale = float16BitsToNumber(bytes.readUInt16LE(q4Block));
      const q8Block = q8 + block * 34;
      const q8Scale = float16BitsToNumber(bytes.readUInt16LE(q8Block));
      for (let index = 0; index < 32; index++) {
        const source = RAMP[block * 32 + index]!;
        const packed = bytes[q4Block + 2 + (index % 16)]!;
        const nibble = index < 16 ? packed & 0x0f : packed >> 4;
        // Half a step, plus the stored f16 scale's rounding (2^-11 relative) times up to 8 or 127 steps.
        expect(Math.abs((nibble - 8) * q4Scale - source)).toBeLessThanOrEqual(
          Math.abs(q4Scale) * (0.5 + 8 / 2048),
        );
        expect(Math.abs(bytes.readInt8(q8Block + 2 + index) * q8Scale - source)).toBeLessThanOrEqual(
          q8Scale * (0.5 + 127 / 2048),
        );
      }
    }
  });

  it("writes random Q4_0 blocks with scale amplitude / 8", () => {
    const start = info.infoEndOffset! + 224;
    for (let block = 0; block < 8; block++) {
      expect(float16BitsToNumber(bytes.readUInt16LE(start + block * 18))).toBeCloseTo(0.008, 5);
    }
  });

  it("is reproducible for a seed and differs across seeds", async () => {
    const again = join(directory, "again.gguf");
    const other = join(directory, "other.gguf");
    await writeGgufFile({ path: again, metadata: METADATA, tensors: TENSORS, seed: 7 });
    await writeGgufFile({ path: other, metadata: METADATA, tensors: TENSORS, seed: 8 });
    expect((await readFile(again)).equals(bytes)).toBe(true);
    expect((await readFile(other)).equals(bytes)).toBe(false);
  });

  it("zeroes the requested rows of random tensors", async () => {
    const zeroed = join(directory, "zeroed.gguf");
    const tensors: GgufTensor[] = (["Q4_0", "Q8_0", "F32"] as const).map((type) => ({
      name: type,
      shape: [32, 4],
      type,
      data: { kind: "random", amplitude: 1, zeroRows: { from: 1, to: 3 } },
    }));
    await writeGgufFile({ path: zeroed, metadata: {}, tensors });
    const file = await readFile(zeroed);
    const zeroedInfo = await readGgufFileInfo(zeroed, { logWarnings: false });
    const rowBytes = [18, 34, 128];
    zeroedInfo.tensorInfo!.forEach((tensor, index) => {
      const row = (number: number) => {
        const start = Number(tensor.fileOffset) + number * rowBytes[index]!;
        return file.subarray(start, start + rowBytes[index]!);
      };
      expect(row(0).some((byte) => byte !== 0)).toBe(true);
      expect(row(1).every((byte) => byte === 0)).toBe(true);
      expect(row(2).every((byte) => byte === 0)).toBe(true);
      expect(row(3).some((byte) => byte !== 0)).toBe(true);
    });
  });

  it("handles headers larger than its initial buffer", async () => {
    const large = join(directory, "large.gguf");
    const tokens = Array.from({ length: 20000 }, (_, index) => `token-${index}`);
    await writeGgufFile({
      path: large,
      metadata: { "tokenizer.ggml.tokens": gguf.array("string", tokens) },
      tensors: [],
    });
    const largeInfo = await readGgufFileInfo(large, { logWarnings: false });
    expect(lookup(largeInfo.metadata, "tokenizer.ggml.tokens")).toEqual(tokens);
  });

  it("rejects tensors llama.cpp would refuse", () => {
    const tensor = (overrides: Partial<GgufTensor>): GgufTensor[] => [
      { name: "t", shape: [32], type: "Q8_0", data: { kind: "constant", value: 1 }, ...overrides },
    ];
    expect(() => planGgufLayout({}, tensor({ shape: [48] }))).toThrow(/multiple of 32/);
    expect(() => planGgufLayout({}, tensor({ shape: [32, 0] }))).toThrow(/positive integers/);
    expect(() => planGgufLayout({}, tensor({ shape: [32, 1, 1, 1, 1] }))).toThrow(/1 to 4 dimensions/);
    expect(() => planGgufLayout({}, tensor({ name: "x".repeat(64) }))).toThrow(/63 bytes/);
    expect(() => planGgufLayout({}, [...tensor({}), ...tensor({})])).toThrow(/duplicate/);
    expect(() =>
      planGgufLayout({}, tensor({ data: { kind: "values", values: new Float32Array(3) } })),
    ).toThrow(/3 values for 32 elements/);
    expect(() => planGgufLayout({ bad: gguf.u8(256) }, [])).toThrow(RangeError);
    expect(() => planGgufLayout({ bad: gguf.array("u32", ["x"]) }, [])).toThrow(TypeError);
  });

  it("stops on abort and leaves no partial file", async () => {
    const aborted = join(directory, "aborted.gguf");
    const controller = new AbortController();
    controller.abort();
    const tensors: GgufTensor[] = [
      { name: "big", shape: [1024, 1024], type: "F32", data: { kind: "random", amplitude: 1 } },
    ];
    await expect(
      writeGgufFile({ path: aborted, metadata: {}, tensors, signal: controller.signal }),
    ).rejects.toThrow();
    await expect(stat(aborted)).rejects.toThrow(/ENOENT/);
  });
});

describe("createFloat16Encoder", () => {
  const toFloat16 = createFloat16Encoder();

  it("converts like IEEE half precision with round-to-nearest-even", () => {
    expect(toFloat16(0)).toBe(0);
    expect(toFloat16(-0)).toBe(0x8000);
    expect(toFloat16(1)).toBe(0x3c00);
    expect(toFloat16(-2)).toBe(0xc000);
    expect(toFloat16(65504)).toBe(0x7bff);
    expect(toFloat16(65520)).toBe(0x7c00);
    expect(toFloat16(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(toFloat16(Number.NaN) & 0x7e00).toBe(0x7e00);
    expect(toFloat16(2 ** -24)).toBe(0x0001);
    expect(toFloat16(2 ** -26)).toBe(0);
    expect(toFloat16(1 + 2 ** -11)).toBe(0x3c00);
    expect(toFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toFloat16(0.008)).toBe(0x2019);
  });

  it("round-trips through float16BitsToNumber", () => {
    for (const value of [1, -2, 0.5, 0.008, 65504, 2 ** -14, 2 ** -20]) {
      const back = float16BitsToNumber(toFloat16(value));
      expect(Math.abs(back - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -11 + 2 ** -25);
    }
  });
});

/**
 * Run as its own process by gpu-probe.ts: loads the model onto the GPU and decodes a few tokens.
 * A GPU build that cannot run on this GPU or driver makes llama.cpp abort the whole process
 * (e.g. "the provided PTX was compiled with an unsupported toolchain"), which no handler can catch,
 * so the daemon tries it here first. Exits 0 when the decode worked.
 * argv: <model path> <gpu type, or "false" for the CPU binding> <gpu layers: a number or "max">
 */
import { getLlama, type LlamaGpuType, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, gpu, layers] = process.argv.slice(2);
if (!modelPath || !gpu || !layers) {
  process.stderr.write("usage: gpu-probe-child <model path> <gpu type> <gpu layers>\n");
  process.exit(2);
}
const wanted = gpu === "false" ? false : (gpu as LlamaGpuType);
const llama = await getLlama({
  build: "never",
  gpu: wanted,
  logLevel: LlamaLogLevel.error,
  logger: (_level, message) => process.stderr.write(`${message.trimEnd()}\n`),
});
if (wanted !== false && llama.gpu === false) {
  process.stderr.write(`the ${gpu} binding did not load\n`);
  process.exit(1);
}
const model = await llama.loadModel({ modelPath, gpuLayers: layers === "max" ? "max" : Number(layers) });
const context = await model.createContext({ contextSize: 256, sequences: 1 });
await context.getSequence().evaluateWithoutGeneratingNewTokens(model.tokenize("The probe decodes this."));
await context.dispose();
await model.dispose();
await llama.dispose();
process.exit(0);

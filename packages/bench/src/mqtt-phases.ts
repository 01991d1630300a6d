import { randomBytes } from "node:crypto";
import type { RuntimeConfig } from "tinyllama-edge/config/app-config.js";
import { type BenchBroker, startBenchBroker } from "./bench-broker.js";
import { BENCH_CONTEXT_SIZE, type BenchContext } from "./bench-context.js";
import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchReport } from "./bench-report.js";
import type { BenchSizes } from "./bench-sizes.js";
import { binarySpecs, binarySteps, measureBinaries } from "./binary-bench.js";
import {
  DAEMON_FIGURES,
  MEMORY_FIGURES,
  measureDaemonGeneration,
  measureDaemonMemory,
  measurePrefixCache,
  PREFIX_FIGURES,
} from "./daemon-bench.js";
import { type DaemonSession, withDaemon } from "./daemon-session.js";
import { allMissing, type FigureSet, type FigureSpec, figuresOrReasons, inSpecOrder } from "./figures.js";
import { measurePairs, PAIRED_FIGURES, type PairedEngine } from "./paired-bench.js";
import {
  measureParallel,
  parallelFigureId,
  parallelRatioId,
  parallelRatioSpec,
  parallelSpec,
} from "./parallel-bench.js";
import {
  measureRestart,
  restartFigureId,
  restartRatioSpec,
  restartSpecs,
  restartSteps,
} from "./restart-bench.js";

const SINGLE_SPECS = { ...DAEMON_FIGURES, ...PAIRED_FIGURES, ...PREFIX_FIGURES, ...MEMORY_FIGURES };

function parallelSpecs(levels: readonly number[]): Record<string, FigureSpec> {
  const specs: Record<string, FigureSpec> = {};
  for (const level of levels) specs[parallelFigureId(level)] = parallelSpec(level);
  for (const level of levels) if (level > 1) specs[parallelRatioId(level)] = parallelRatioSpec(level);
  return specs;
}

function restartSpecsWithRatios(tokens: readonly number[]): Record<string, FigureSpec> {
  const specs = restartSpecs(tokens);
  for (const n of tokens) specs[restartFigureId("ratio", n)] = restartRatioSpec(n);
  return specs;
}

export function mqttSteps(sizes: BenchSizes): {
  single: number;
  restart: number;
  parallel: number;
  binary: number;
} {
  return {
    binary: binarySteps(sizes),
    single: 1 + 2 * (sizes.warmups + sizes.runs) + 2 * sizes.prefixRuns + 1 + 1,
    restart: restartSteps(sizes),
    parallel: 1 + sizes.warmups + sizes.parallelLevels.length * sizes.parallelRuns,
  };
}

/** Configured runtime settings the daemon must share with the engine; "auto" ones it plans alike. */
export function configuredRuntimeFlags(runtime: RuntimeConfig): string[] {
  const flags = ["--runtime.gpu", runtime.gpu, "--runtime.nativeBuild", runtime.nativeBuild];
  const keys = ["gpuLayers", "batchSize", "useMmap", "memoryReserveMiB"] as const;
  for (const key of keys) {
    if (runtime[key] !== "auto") flags.push(`--runtime.${key}`, String(runtime[key]));
  }
  return flags;
}

/** Runs the built daemon with the bench's model and settings (and `extraFlags`) for `use`. */
function runBenchDaemon(
  bench: BenchContext,
  broker: BenchBroker,
  nodeId: string,
  parallelSequences: number,
  extraFlags: string[],
  use: (session: DaemonSession) => Promise<void>,
): Promise<void> {
  const { runtime, config, signal } = bench;
  return withDaemon(
    {
      mqtt: config.mqtt,
      signal,
      child: {
        brokerUrl: broker.url,
        protocolVersion: broker.protocolVersion,
        baseTopic: config.mqtt.baseTopic,
        nodeId,
        modelPath: runtime.modelPath,
        threads: runtime.plan.threads,
        parallelSequences,
        contextSize: BENCH_CONTEXT_SIZE,
        extraFlags: [...configuredRuntimeFlags(config.runtime), ...extraFlags],
      },
    },
    use,
  );
}

/** Starts a daemon, runs `measure` on it, and gives n/a with the reason for whatever it could not. */
async function daemonFigures(
  bench: BenchContext,
  broker: BenchBroker,
  nodeId: string,
  parallelSequences: number,
  specs: Record<string, FigureSpec>,
  measure: (session: DaemonSession, collected: FigureSet) => Promise<void>,
): Promise<FigureSet> {
  const { signal } = bench;
  const collected: FigureSet = {};
  let failure = "not reached";
  try {
    await runBenchDaemon(bench, broker, nodeId, parallelSequences, [], (session) =>
      measure(session, collected),
    );
  } catch (err) {
    signal.throwIfAborted();
    failure = (err as Error).message;
  }
  return inSpecOrder(specs, collected, failure);
}

/**
 * The built daemon over MQTT on the bench's own broker: one sequence (tg, tg paired with the
 * in-process engine, TTFT, prefix cache, memory), then as many sequences as the widest parallel
 * level. The paired engine is freed once the single-sequence session ends.
 */
export async function measureOverMqtt(
  bench: BenchContext,
  prompts: BenchPrompts,
  paired: PairedEngine,
): Promise<{ figures: FigureSet; broker: BenchReport["broker"] }> {
  const { sizes, signal, temperature } = bench;
  const steps = mqttSteps(sizes);
  const parallelFigureSpecs = parallelSpecs(sizes.parallelLevels);
  const restartFigureSpecs = restartSpecsWithRatios(sizes.restartPromptTokens);
  let broker: BenchBroker;
  try {
    broker = await startBenchBroker();
  } catch (err) {
    await paired.dispose();
    const reason = `no MQTT broker: ${(err as Error).message}`;
    return {
      figures: allMissing(
        { ...SINGLE_SPECS, ...restartFigureSpecs, ...parallelFigureSpecs, ...binarySpecs() },
        reason,
      ),
      broker: null,
    };
  }
  try {
    const nodeId = `bench-${randomBytes(3).toString("hex")}`;
    const single = bench.phase("daemon", steps.single);
    let singleFigures: FigureSet;
    try {
      singleFigures = await daemonFigures(
        bench,
        broker,
        `${nodeId}-1`,
        1,
        SINGLE_SPECS,
        async (session, into) => {
          single.step("online");
          const common = { session, sizes, prompts, temperature, step: single.step };
          Object.assign(
            into,
            await figuresOrReasons(DAEMON_FIGURES, signal, () => measureDaemonGeneration(common)),
          );
          Object.assign(
            into,
            await figuresOrReasons(PAIRED_FIGURES, signal, () =>
              measurePairs({ ...common, engineRun: paired.run }),
            ),
          );
          Object.assign(
            into,
            await figuresOrReasons(PREFIX_FIGURES, signal, () => measurePrefixCache(common)),
          );
          Object.assign(
            into,
            await figuresOrReasons(MEMORY_FIGURES, signal, () => measureDaemonMemory(session)),
          );
          single.step("memory read");
        },
      );
    } finally {
      await paired.dispose();
    }
    single.finish();
    const restart = bench.phase("restart", steps.restart);
    const restartFigures = await figuresOrReasons(restartFigureSpecs, signal, () =>
      measureRestart({
        sizes,
        prompts,
        temperature,
        step: restart.step,
        withDaemon: (flags, use) => runBenchDaemon(bench, broker, `${nodeId}-r`, 1, flags, use),
      }),
    );
    restart.finish();
    const widest = Math.max(...sizes.parallelLevels);
    const parallel = bench.phase("parallel", steps.parallel);
    const parallelFigures = await daemonFigures(
      bench,
      broker,
      `${nodeId}-${widest}`,
      widest,
      parallelFigureSpecs,
      async (session, into) => {
        parallel.step("online");
        Object.assign(
          into,
          await measureParallel({ session, sizes, prompts, temperature, step: parallel.step }),
        );
      },
    );
    parallel.finish();
    const binary = bench.phase("binary", steps.binary);
    const binaryFigures = await figuresOrReasons(binarySpecs(), signal, () =>
      measureBinaries({
        sizes,
        prompts,
        temperature,
        step: binary.step,
        withDaemon: (flags, use) => runBenchDaemon(bench, broker, `${nodeId}-b`, widest, flags, use),
      }),
    );
    binary.finish();
    return {
      figures: { ...singleFigures, ...restartFigures, ...parallelFigures, ...binaryFigures },
      broker: { kind: broker.kind, tcpNoDelay: broker.tcpNoDelay },
    };
  } finally {
    await broker.stop();
  }
}

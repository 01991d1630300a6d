import type { AppConfig } from "../config/app-config.js";
import { EdgeError } from "../errors.js";
import { type DetectHardwareDeps, detectHardware } from "../hardware/detect-hardware.js";
import type { HardwareProfile } from "../hardware/hardware-profile.js";
import { planRuntime, type RuntimePlan } from "../hardware/plan-runtime.js";
import { checkGgufHeader, type ModelHeaderFacts } from "../model/gguf-check.js";
import { locateModelFile, type ModelFileLocation } from "../model/model-store.js";
import { customModelFacts, planRequestFromConfig } from "./plan-request-from-config.js";

export interface DevicePlan {
  hardware: HardwareProfile;
  plan: RuntimePlan;
  /** The header of `model.path`, read before planning (the plan sizes memory from it). */
  header: ModelHeaderFacts | undefined;
  /** The file `start` loads and `pull` fetches. */
  modelFile: ModelFileLocation;
}

/**
 * detect → plan → which model file: the one step `start` and `pull` share, so `pull` fetches the
 * very file `start` will load. A model that cannot fit is refused here, before anything is read.
 */
export async function planForDevice(
  config: AppConfig,
  detection: DetectHardwareDeps,
  env: NodeJS.ProcessEnv,
): Promise<DevicePlan> {
  const hardware = await detectHardware(detection);
  const header = config.model.path ? await checkConfiguredModel(config.model.path) : undefined;
  const request = planRequestFromConfig(
    config.runtime,
    header ? customModelFacts(config.model.path, header) : undefined,
  );
  const plan = planRuntime(hardware, request);
  const modelFile = locateModelFile(config.model, plan.modelUri ?? "", env);
  return { hardware, plan, header, modelFile };
}

/** The header of the file `model.path` names; a file that is not a usable GGUF is refused with the fix. */
async function checkConfiguredModel(path: string): Promise<ModelHeaderFacts> {
  try {
    return await checkGgufHeader(path);
  } catch (err) {
    if (!(err instanceof EdgeError)) throw err;
    throw new EdgeError(
      err.code,
      `${err.message} (point model.path at a GGUF file, or leave it unset to download the model this device's plan picks)`,
      { cause: err.cause, details: err.details },
    );
  }
}

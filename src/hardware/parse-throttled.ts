import type { ThrottleState } from "./hardware-profile.js";

/**
 * Parses `vcgencmd get_throttled` output ("throttled=0x50005"). Bits 0-3 are the state now
 * (under-voltage, frequency capped, throttled, soft temperature limit); bits 16-19 the same since boot.
 */
export function parseThrottled(output: string): ThrottleState | null {
  const match = /throttled=(0x[0-9a-f]+|\d+)/i.exec(output);
  if (!match?.[1]) return null;
  const bits = Number(match[1]);
  if (!Number.isSafeInteger(bits)) return null;
  const bit = (index: number) => (bits & (1 << index)) !== 0;
  return {
    raw: `0x${bits.toString(16)}`,
    underVoltage: bit(0),
    frequencyCapped: bit(1),
    throttled: bit(2),
    softTemperatureLimit: bit(3),
    underVoltageOccurred: bit(16),
    frequencyCappedOccurred: bit(17),
    throttledOccurred: bit(18),
    softTemperatureLimitOccurred: bit(19),
  };
}

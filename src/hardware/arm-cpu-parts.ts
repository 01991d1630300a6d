/** ARM Ltd (implementer 0x41) `CPU part` ids seen on edge boards, with their big/LITTLE role. */

export interface ArmCorePart {
  name: string;
  /** LITTLE cores are in-order efficiency designs: inference threads belong elsewhere when big cores exist. */
  role: "big" | "little";
}

const armCoreParts: Readonly<Record<string, ArmCorePart>> = {
  "0xc07": { name: "Cortex-A7", role: "little" },
  "0xc09": { name: "Cortex-A9", role: "big" },
  "0xc0f": { name: "Cortex-A15", role: "big" },
  "0xd03": { name: "Cortex-A53", role: "little" },
  "0xd04": { name: "Cortex-A35", role: "little" },
  "0xd05": { name: "Cortex-A55", role: "little" },
  "0xd07": { name: "Cortex-A57", role: "big" },
  "0xd08": { name: "Cortex-A72", role: "big" },
  "0xd09": { name: "Cortex-A73", role: "big" },
  "0xd0a": { name: "Cortex-A75", role: "big" },
  "0xd0b": { name: "Cortex-A76", role: "big" },
  "0xd0c": { name: "Neoverse-N1", role: "big" },
  "0xd0d": { name: "Cortex-A77", role: "big" },
  "0xd40": { name: "Neoverse-V1", role: "big" },
  "0xd41": { name: "Cortex-A78", role: "big" },
  "0xd42": { name: "Cortex-A78AE", role: "big" },
  "0xd44": { name: "Cortex-X1", role: "big" },
  "0xd46": { name: "Cortex-A510", role: "little" },
  "0xd47": { name: "Cortex-A710", role: "big" },
  "0xd48": { name: "Cortex-X2", role: "big" },
  "0xd49": { name: "Neoverse-N2", role: "big" },
  "0xd4d": { name: "Cortex-A715", role: "big" },
  "0xd4e": { name: "Cortex-X3", role: "big" },
  "0xd80": { name: "Cortex-A520", role: "little" },
  "0xd81": { name: "Cortex-A720", role: "big" },
};

export function armCorePart(partId: string | null): ArmCorePart | null {
  if (partId === null) return null;
  return armCoreParts[partId.toLowerCase()] ?? null;
}

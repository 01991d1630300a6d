import convict from "convict";
import { isValidTopicFilter } from "../mqtt/topic-filter.js";

/** Custom convict formats; each coerces strings from the environment and CLI flags. */
const AUTO = "auto";

function toAutoOrInteger(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const trimmed = value.trim();
  if (trimmed === AUTO) return AUTO;
  return /^-?\d+$/.test(trimmed) ? Number.parseInt(trimmed, 10) : value;
}

function isPositiveInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value > 0;
}

export function registerConfigFormats(): void {
  convict.addFormats({
    "auto-or-positive-int": {
      validate(value: unknown) {
        if (value !== AUTO && !isPositiveInteger(value)) {
          throw new Error('must be "auto" or a positive integer');
        }
      },
      coerce: toAutoOrInteger,
    },
    "gpu-layers": {
      validate(value: unknown) {
        const ok =
          value === AUTO ||
          value === "max" ||
          (typeof value === "number" && Number.isInteger(value) && value >= 0);
        if (!ok) throw new Error('must be "auto", "max" or a layer count >= 0');
      },
      coerce: (value: unknown) => (value === "max" ? value : toAutoOrInteger(value)),
    },
    "auto-or-boolean": {
      validate(value: unknown) {
        if (value !== AUTO && typeof value !== "boolean") throw new Error('must be "auto", true or false');
      },
      coerce: (value: unknown) => (value === "true" ? true : value === "false" ? false : value),
    },
    "mqtt-url": {
      validate(value: unknown) {
        if (typeof value !== "string") throw new Error("must be a URL string");
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          throw new Error("must be a URL such as mqtt://host:1883");
        }
        if (!["mqtt:", "mqtts:", "ws:", "wss:", "tcp:", "tls:"].includes(url.protocol)) {
          throw new Error("scheme must be mqtt, mqtts, ws, wss, tcp or tls");
        }
      },
    },
    "topic-level": {
      validate(value: unknown) {
        if (typeof value !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
          throw new Error("must be 1-64 characters of [A-Za-z0-9_-]");
        }
      },
    },
    "optional-topic-level": {
      validate(value: unknown) {
        if (typeof value !== "string" || (value !== "" && !/^[A-Za-z0-9_-]{1,64}$/.test(value))) {
          throw new Error('must be "" (automatic) or 1-64 characters of [A-Za-z0-9_-]');
        }
      },
    },
    "topic-prefix": {
      validate(value: unknown) {
        const ok =
          typeof value === "string" &&
          value.length > 0 &&
          value.length <= 128 &&
          !/[+#\0]/.test(value) &&
          !value.startsWith("$") &&
          value.split("/").every((level) => level.length > 0);
        if (!ok) throw new Error("must be a topic prefix without wildcards, $ or empty levels");
      },
    },
    "topic-filter-list": {
      validate(value: unknown) {
        if (!Array.isArray(value)) throw new Error("must be a list of topic filters");
        for (const filter of value) {
          if (typeof filter !== "string" || !isValidTopicFilter(filter)) {
            throw new Error(`${JSON.stringify(filter)} is not a valid MQTT topic filter`);
          }
        }
      },
      coerce: (value: unknown) =>
        typeof value === "string"
          ? value
              .split(",")
              .map((f) => f.trim())
              .filter((f) => f !== "")
          : value,
    },
    "positive-int": {
      validate(value: unknown) {
        if (!isPositiveInteger(value)) throw new Error("must be a positive integer");
      },
      coerce: (value: unknown) => (typeof value === "string" ? Number(value) : value),
    },
    "non-negative-int": {
      validate(value: unknown) {
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
          throw new Error("must be an integer >= 0");
        }
      },
      coerce: (value: unknown) => (typeof value === "string" ? Number(value) : value),
    },
    "unit-interval": {
      validate(value: unknown) {
        if (typeof value !== "number" || !(value >= 0 && value <= 1))
          throw new Error("must be between 0 and 1");
      },
      coerce: (value: unknown) => (typeof value === "string" ? Number(value) : value),
    },
    "non-negative-number": {
      validate(value: unknown) {
        if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
          throw new Error("must be a number >= 0");
        }
      },
      coerce: (value: unknown) => (typeof value === "string" ? Number(value) : value),
    },
  });
}

import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  level: string;
  /** Human-readable output (a terminal); JSON otherwise, which journald keeps as it is. */
  pretty: boolean;
  /** Where lines go; stdout when absent. Tests pass a sink to read what was logged. */
  destination?: DestinationStream;
}

/** Keys whose values never reach a log line, wherever they appear. */
export const REDACTED_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "mqtt.tls.key",
  "config.mqtt.password",
  "config.mqtt.tls.key",
];

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({
      ...base,
      transport: {
        target: "pino-pretty",
        options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid" },
      },
    });
  }
  return pino(base, pino.destination({ dest: 1, sync: true }));
}

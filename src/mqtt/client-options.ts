import { readFileSync } from "node:fs";
import type { IClientOptions } from "mqtt";
import type { MqttConfig } from "../config/app-config.js";

/** Credentials and TLS files from the configuration, shared by the daemon and the `ask` client. */
export function credentialOptions(config: MqttConfig): IClientOptions {
  const options: IClientOptions = { rejectUnauthorized: config.tls.rejectUnauthorized };
  if (config.username) options.username = config.username;
  if (config.password) options.password = config.password;
  if (config.tls.ca) options.ca = readFileSync(config.tls.ca);
  if (config.tls.cert) options.cert = readFileSync(config.tls.cert);
  if (config.tls.key) options.key = readFileSync(config.tls.key);
  return options;
}

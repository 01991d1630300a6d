import { execFileSync } from "node:child_process";
import { chmodSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The path of a command-line tool on PATH (or in the sbin directories), or null when it is missing. */
export function toolPath(name: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      if (readdirSync(dir).includes(name)) return join(dir, name);
    } catch {
      // not a readable directory
    }
  }
  return null;
}

export interface TlsFixtures {
  /** The CA that signed the broker's certificate. */
  caCert: string;
  /** Another CA, which signed nothing the broker uses: a client trusting only it must refuse the broker. */
  otherCaCert: string;
  serverCert: string;
  serverKey: string;
  /** A Mosquitto password file with the given users. */
  passwordFile: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync(toolPath("openssl") ?? "openssl", args, { cwd: dir, stdio: "pipe" });
}

/**
 * Test-only PKI in `dir`: a CA, a broker certificate for 127.0.0.1 and localhost (subjectAltName)
 * signed by it, an unrelated second CA, and a password file. Files are made world-readable because
 * Mosquitto started as root drops to its own user before it reads them.
 */
export function makeTlsFixtures(dir: string, users: Record<string, string>): TlsFixtures {
  const days = "2";
  openssl(
    dir,
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"].concat([
      "-days",
      days,
      "-subj",
      "/CN=tinyllama-edge test CA",
    ]),
  );
  openssl(
    dir,
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key"].concat([
      "-out",
      "other-ca.crt",
      "-days",
      days,
      "-subj",
      "/CN=some other CA",
    ]),
  );
  openssl(
    dir,
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"].concat([
      "-subj",
      "/CN=localhost",
    ]),
  );
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(
    dir,
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"].concat([
      "-out",
      "server.crt",
      "-days",
      days,
      "-extfile",
      "server.ext",
    ]),
  );
  const passwordFile = join(dir, "passwords");
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    const create = first ? ["-c"] : [];
    execFileSync(
      toolPath("mosquitto_passwd") ?? "mosquitto_passwd",
      ["-b", ...create, passwordFile, user, password],
      {
        stdio: "pipe",
      },
    );
    first = false;
  }
  chmodSync(dir, 0o755);
  for (const file of readdirSync(dir)) chmodSync(join(dir, file), 0o644);
  return {
    caCert: join(dir, "ca.crt"),
    otherCaCert: join(dir, "other-ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    passwordFile,
  };
}

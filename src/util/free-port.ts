import { createServer } from "node:net";

/** A TCP port nothing listens on right now; never 1883, where the machine's own broker may live. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });
    if (port !== 1883 && port !== 0) return port;
  }
}

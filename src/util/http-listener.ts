import type { Server } from "node:http";
import { EdgeError } from "../errors.js";

/** Listens, or rejects with a one-line config error naming the address (port taken, host unknown). */
export async function listenOn(server: Server, host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) =>
      reject(new EdgeError("config_invalid", `${what} cannot listen on ${host}:${port}: ${err.message}`));
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      resolve();
    });
  });
}

/** Closes the server and every open connection: kept-alive clients must not hold a shutdown. */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import type { SdNotify } from "../supervision/sd-notify.js";
import type { NodeStatus } from "./node-status.js";

/** Last of the list: everything serves, so the node says online and systemd hears READY. */
export class Online implements Component {
  readonly name = "online";
  private readonly deps: {
    logger: Logger;
    nodeId: string;
    status: NodeStatus;
    sdNotify: SdNotify;
    /** Health goes out at once with the new state. */
    publishHealthNow: () => void;
  };

  constructor(deps: Online["deps"]) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    const { status, nodeId } = this.deps;
    await status.set("online");
    this.deps.publishHealthNow();
    this.deps.sdNotify.ready(`online as ${nodeId}`);
    this.deps.logger.info({ node: nodeId, status: status.topic }, "online");
  }

  /** First to stop: systemd learns the node is stopping before requests drain. */
  stop(): void {
    this.deps.sdNotify.stopping();
  }
}
